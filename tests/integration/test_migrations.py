"""A new database gets ``schema/<dialect>.sql``; an older one gets the migrations it lacks.
Both roads must lead to the same schema, and an upgrade keeps the data."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from hookline.store import Store
from hookline.store.connector import connector_for
from hookline.store.queries import load_migrations

HOOKLINE = str(Path(sys.executable).with_name("hookline"))


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


async def build_at_version(url: str, version: int) -> None:
    """What an older hookline left behind: its migrations, and a record of them."""
    steps = [(v, name, sql) for v, name, sql in load_migrations(_dialect(url)) if v <= version]
    if _dialect(url) == "sqlite":
        db = sqlite3.connect(url[len("sqlite:///") :])
        db.execute(
            "CREATE TABLE schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for v, name, sql in steps:
            db.executescript(sql)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (v, name, time.time()))
        db.commit()
        db.close()
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at DOUBLE PRECISION NOT NULL)"
        )
        for v, name, sql in steps:
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, $3)", v, name, time.time()
            )
    finally:
        await conn.close()


async def describe(url: str) -> dict[str, Any]:
    """Tables, columns, indexes and constraints, in a form both roads can be compared in."""
    if _dialect(url) == "sqlite":
        return _describe_sqlite(url[len("sqlite:///") :])
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, "
            "is_identity, ordinal_position FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "ORDER BY indexname"
        )
        constraints = await conn.fetch(
            "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    return {
        "columns": [tuple(r) for r in columns],
        "indexes": [tuple(r) for r in indexes],
        "constraints": [tuple(r) for r in constraints],
    }


def _describe_sqlite(path: str) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        described: dict[str, Any] = {}
        for table in tables:
            indexes = {
                r[1]: (r[2], r[4], [c[2] for c in db.execute(f"PRAGMA index_info('{r[1]}')")])
                for r in db.execute(f"PRAGMA index_list('{table}')")
            }
            described[table] = {
                "columns": list(db.execute(f"PRAGMA table_xinfo('{table}')")),
                "foreign_keys": list(db.execute(f"PRAGMA foreign_key_list('{table}')")),
                "indexes": indexes,
            }
        # Partial indexes differ only in their WHERE, which only their SQL shows.
        described["index_sql"] = sorted(
            " ".join(r[1].split())
            for r in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
            if r[1]
        )
        return described
    finally:
        db.close()


async def _fresh_url(database_url: str, tmp_path: Path) -> str:
    """A second empty database of the same kind as ``database_url``."""
    if _dialect(database_url) == "sqlite":
        return f"sqlite:///{tmp_path}/other.db"
    conn = await asyncpg.connect(database_url)
    try:
        name = (await conn.fetchval("SELECT current_database()")) + "_b"
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url.rsplit("/", 1)[0] + "/" + name


async def _drop(url: str) -> None:
    if _dialect(url) == "postgres":
        from tests.conftest import _admin

        await _admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def test_the_schema_equals_the_migrations_in_order(database_url: str, tmp_path: Path) -> None:
    other = await _fresh_url(database_url, tmp_path)
    try:
        fresh = connector_for(database_url)
        await fresh.open()
        try:
            applied = await fresh.migrate()
        finally:
            await fresh.close()
        assert applied == [v for v, _, _ in load_migrations(_dialect(database_url))]
        await build_at_version(other, len(applied))
        assert await describe(other) == await describe(database_url)
    finally:
        await _drop(other)


async def test_migrate_upgrades_an_older_database_in_place(database_url: str) -> None:
    await build_at_version(database_url, 1)
    old = connector_for(database_url)
    await old.open()
    try:
        await old.fetchrow(  # RETURNING: read it, or SQLite keeps the statement open
            "create_app",
            id="app_1",
            name="shop",
            api_key_hash="h",
            verification_key="k",
            now=time.time(),
        )
    finally:
        await old.close()
    latest = load_migrations(_dialect(database_url))[-1][0]
    process = await asyncio.create_subprocess_exec(
        HOOKLINE, "migrate", "--database", database_url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert f"from version 1 to {latest}" in out.decode()
    store = await Store.open(database_url, migrate=False)
    try:
        assert await store.db.schema_version() == latest
        assert (await store.get_app("app_1")).name == "shop"
    finally:
        await store.close()
