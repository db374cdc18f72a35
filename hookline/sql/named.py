"""Named SQL blocks, and the placeholder spelling asyncpg takes.

A package keeps its queries in a ``.sql`` file per dialect, each query a block that starts
with a ``-- name --`` line; text before the first block is a comment. The same names exist
in every dialect of a package (each package's tests check it). Parameters are written
``:name``: sqlite3 takes them as they are; for asyncpg they become ``$1``, ``$2``, ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_BLOCK = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)

# A ``:name`` not preceded by a colon or a word character: ``::jsonb`` casts are left
# alone. Written by hand rather than with a SQL parser because the queries are ours and
# simple (no string literals or comments with colons in them), and a test covers it.
PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")


@cache
def load_queries(package: str, resource: str) -> dict[str, str]:
    """``{name: sql}`` from the file ``resource`` (a path inside ``package``)."""
    text = resources.files(package).joinpath(resource).read_text("utf-8")
    parts = _BLOCK.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@dataclass(frozen=True, slots=True)
class Query:
    """A named block as asyncpg takes it: ``$n`` placeholders and their names in order."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, sql: str) -> Query:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        return cls(PARAM.sub(number, sql), tuple(names))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The values in placeholder order (``params`` may hold more)."""
        return [params[name] for name in self.names]


def compile_queries(queries: Mapping[str, str]) -> dict[str, Query]:
    """Every block of ``queries`` compiled for asyncpg."""
    return {name: Query.compile(sql) for name, sql in queries.items()}
