"""Loads the named SQL blocks of a dialect and the numbered migrations.

Each dialect keeps its queries in ``queries/<dialect>.sql`` as blocks that start with a
``-- name --`` line, its whole current schema in ``schema/<dialect>.sql`` (what a new
database gets) and the steps from each version to the next in
``migrations/<dialect>/NNNN_*.sql`` (what an older database gets). The same names and the
same migration numbers exist in every dialect, and the schema equals the migrations
applied in order (tests check both).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from hookline.sql import named


def load_queries(dialect: str) -> dict[str, str]:
    return named.load_queries("hookline.store", f"queries/{dialect}.sql")


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


@cache
def load_schema(dialect: str) -> str:
    return resources.files("hookline.store").joinpath(f"schema/{dialect}.sql").read_text()


def upgrade_steps(dialect: str, current: int) -> list[tuple[str, list[tuple[int, str]]]]:
    """The SQL that brings a database at version ``current`` up to date, step by step,
    each with the (version, name) pairs it completes.

    A new database (version 0) gets the whole schema in one step; an older one gets the
    migrations it lacks, in order.
    """
    migrations = load_migrations(dialect)
    if current == 0:
        return [(load_schema(dialect), [(version, name) for version, name, _ in migrations])]
    return [(sql, [(version, name)]) for version, name, sql in migrations if version > current]
