"""hookline's tables in a schema of their own: ``postgresql://.../db?schema=hookline``."""

from __future__ import annotations

import asyncpg
import pytest

from hookline.exceptions import ConfigError
from hookline.store import Store
from hookline.store.postgres import split_schema

pytestmark = pytest.mark.postgres


def test_the_schema_option_is_taken_out_of_the_url_and_checked() -> None:
    assert split_schema("postgresql://u@h/db?schema=hookline&sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "hookline",
    )
    assert split_schema("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    for bad in ("Hook-Line", "1st", "", "a;drop table x", "x" * 64):
        with pytest.raises(ConfigError, match="schema="):
            split_schema(f"postgresql://u@h/db?schema={bad}")
    with pytest.raises(ConfigError, match="one schema"):
        split_schema("postgresql://u@h/db?schema=a&schema=b")


async def test_migrate_makes_the_schema_and_keeps_every_table_in_it(postgres_url: str) -> None:
    store = await Store.open(postgres_url + "?schema=hookline")
    try:
        app, _ = await store.create_app("shop")
        assert (await store.get_app(app.id)).name == "shop"
    finally:
        await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        where = await conn.fetch(
            "SELECT DISTINCT table_schema FROM information_schema.tables "
            "WHERE table_name IN ('apps', 'events', 'deliveries', 'schema_migrations')"
        )
        assert [r["table_schema"] for r in where] == ["hookline"]
    finally:
        await conn.close()
    # The default stays as it was: the server's search_path, where nothing is yet.
    with pytest.raises(ConfigError, match="holds no hookline database"):
        await Store.open(postgres_url, create=False)
    reopened = await Store.open(postgres_url + "?schema=hookline", create=False)
    await reopened.close()
