"""``hookline outbox install|status|uninstall`` and ``hookline relay``'s refusals, through
click, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from click.testing import CliRunner, Result

from hookline.cli import main
from tests.conftest import fresh_postgres
from tests.support.receive_process import HOOKLINE

pytestmark = pytest.mark.postgres


async def hl(*args: str) -> Result:
    """The command, in a thread: it runs its own event loop."""
    # Nothing from the environment: HOOKLINE_ADMIN_TOKEN and the URLs are the test's.
    env = {"HOOKLINE_ADMIN_TOKEN": None, "HOOKLINE_OUTBOX_DATABASE_URL": None}
    return await asyncio.to_thread(CliRunner(env=env).invoke, main, list(args))


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        yield url


async def test_install_status_and_uninstall(database: str) -> None:
    made = await hl("outbox", "install", "--database", database)
    assert made.exit_code == 0, made.output
    assert "outbox installed in" in made.output
    again = await hl("outbox", "install", "--database", database)
    assert again.exit_code == 0 and "outbox already in" in again.output
    assert (await hl("outbox", "status", "--database", database)).output == (
        "0 waiting; 0 refused by hookline\n"
    )

    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO hookline.outbox (event_id, event_type, user_id, data) "
            "VALUES ('evt-1', 'order_completed', 'store-1', '{}')"
        )
    finally:
        await conn.close()
    status = await hl("outbox", "status", "--database", database)
    assert status.output.startswith("1 waiting, the oldest "), status.output
    kept = await hl("outbox", "uninstall", "--database", database)
    assert kept.exit_code == 1
    assert "still holds 1 row(s) for the relay" in kept.output
    assert "--force" in kept.output
    dropped = await hl("outbox", "uninstall", "--database", database, "--force")
    assert dropped.exit_code == 0 and "(1 row(s) with it)" in dropped.output
    gone = await hl("outbox", "status", "--database", database)
    assert gone.exit_code == 1
    assert "has no outbox" in gone.output and "hookline outbox install" in gone.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--to", "http://127.0.0.1:9"], "needs its admin token: set HOOKLINE_ADMIN_TOKEN"),
        (["--to", "ftp://hookline"], "is neither hookline's API"),
        (["--to", "/no/such/file.db"], "is neither hookline's API"),
    ],
)
async def test_relay_refuses_a_target_it_cannot_use(args: list[str], says: str) -> None:
    result = await hl("relay", "--from", "postgresql://postgres@127.0.0.1/x", *args)
    assert result.exit_code == 1
    assert says in result.output


async def test_relay_reads_only_from_postgresql() -> None:
    result = await hl("relay", "--from", "sqlite:///shop.db", "--to", "sqlite:///hookline.db")
    assert result.exit_code == 1
    assert "the outbox lives in a PostgreSQL database" in result.output


async def test_relay_stops_at_once_on_a_database_without_an_outbox(
    database: str, tmp_path: object
) -> None:
    hookline_db = f"sqlite:///{tmp_path}/hookline.db"
    assert (await hl("migrate", "--database", hookline_db)).exit_code == 0
    # The real command (it sets signal handlers, which only a main thread may).
    relay = await asyncio.create_subprocess_exec(
        HOOKLINE,
        *("relay", "--from", database, "--to", hookline_db),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(relay.communicate(), 60)
    assert relay.returncode == 1
    assert "has no outbox (table hookline.outbox)" in stderr.decode()


async def test_a_schema_in_the_outbox_url_is_refused_with_the_reason(database: str) -> None:
    """?schema= is for hookline's own URL; the outbox is hookline.outbox whatever it says."""
    for command in (["outbox", "install", "--database"], ["relay", "--to", "/x", "--from"]):
        result = await hl(*command, database + "?schema=hookline")
        assert result.exit_code == 1, result.output
        assert "the outbox is always the table hookline.outbox" in result.output
        assert "drop ?schema=" in result.output


@pytest.mark.parametrize("to", ["sqlite:///{tmp}/missing.db", "{database}"])
async def test_relay_stops_at_its_start_on_a_target_that_is_not_hookline(
    database: str, to: str, tmp_path: object
) -> None:
    """A --to that names no hookline database stops the relay when it starts, not when
    the first row arrives (an empty outbox would hide it until then)."""
    assert (await hl("outbox", "install", "--database", database)).exit_code == 0
    relay = await asyncio.create_subprocess_exec(
        HOOKLINE,
        *("relay", "--from", database, "--to", to.format(tmp=tmp_path, database=database)),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(relay.communicate(), 60)
    finally:
        if relay.returncode is None:
            relay.kill()
            await relay.wait()
    assert relay.returncode == 1
    assert "hookline migrate" in stderr.decode()
