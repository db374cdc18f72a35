"""Fixtures every test folder shares: free ports and throwaway PostgreSQL databases.

PostgreSQL tests make a database of their own and drop it afterwards. Where no server
answers they are skipped, except under CI (``CI=true``), where a missing server is a
failure: CI must never go green by skipping the PostgreSQL half.

Property tests (Hypothesis) try 100 examples each in everyday runs, so the unit tests
stay quick, and 400 under CI, where the time is there to look further. Neither has a
deadline per example: a loaded machine must not fail a correct test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=400, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

PG_ADMIN_DSN = os.environ.get("HOOKLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not running at 127.0.0.1:5432, and CI needs it")
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """Make an empty PostgreSQL database, yield its URL, drop it afterwards."""
    require_postgres()
    name = "hl_test_" + secrets.token_hex(6)
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: object) -> Iterator[str]:
    yield f"sqlite:///{tmp_path}/hookline.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[str]:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/hookline.db"
        return
    async with fresh_postgres() as url:
        yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``database_url`` for a whole module (a server shared by its tests), for tests that
    run their server in a thread of its own rather than in the test's event loop."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'hookline.db'}"
        return
    require_postgres()
    name = "hl_test_" + secrets.token_hex(6)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
