"""Both dialects define the same named queries and the same migration versions."""

from __future__ import annotations

import re

from hookline.store.postgres import compiled_queries
from hookline.store.queries import load_migrations, load_queries, upgrade_steps


def test_both_dialects_define_the_same_queries() -> None:
    assert set(load_queries("sqlite")) == set(load_queries("postgres"))


def test_both_dialects_have_the_same_migration_versions() -> None:
    def versions(dialect: str) -> list[int]:
        return [version for version, _, _ in load_migrations(dialect)]

    assert versions("sqlite") == versions("postgres")
    assert versions("sqlite") == list(range(1, len(versions("sqlite")) + 1))


def test_a_new_database_gets_the_whole_schema_in_one_step() -> None:
    (step,) = upgrade_steps("postgres", 0)
    assert [v for v, _ in step[1]] == [v for v, _, _ in load_migrations("postgres")]
    assert upgrade_steps("postgres", len(load_migrations("postgres"))) == []


def test_every_postgres_query_compiles_to_numbered_parameters_only() -> None:
    for name, query in compiled_queries().items():
        assert not re.search(r"(?<![:\w]):[a-z_]", query.sql), name
