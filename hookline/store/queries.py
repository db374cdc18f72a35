"""Loads the named SQL blocks of a dialect and the numbered migrations.

Each dialect keeps its queries in ``queries/<dialect>.sql`` as blocks that start with a
``-- name --`` line, and its schema in ``migrations/<dialect>/NNNN_*.sql``. The same names
and the same migration numbers exist in every dialect (a test checks it).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_BLOCK = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files("hookline.store").joinpath(f"queries/{dialect}.sql").read_text()
    parts = _BLOCK.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def load_migrations(dialect: str) -> tuple[tuple[int, str, str], ...]:
    """(version, name, sql) for each migration file, in version order."""
    folder = resources.files("hookline.store").joinpath(f"migrations/{dialect}")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return tuple(sorted(found))
