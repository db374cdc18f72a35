"""The ``hookline`` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import click

from hookline import __version__
from hookline.config import EngineSettings, RateLimits, database_url
from hookline.exceptions import HooklineError

if TYPE_CHECKING:
    from hookline.store import Store
    from hookline.store.connector import Connector

DATABASE_HELP = "Database URL: sqlite:///path.db or postgresql://... [env HOOKLINE_DATABASE_URL]"


@click.group()
@click.version_option(__version__, prog_name="hookline")
def main() -> None:
    """hookline: signed, retried, ordered webhooks, sender and receiver."""


def _settings(allow_private_targets: bool) -> EngineSettings:
    try:
        return EngineSettings.from_env(allow_private_targets=allow_private_targets or None)
    except HooklineError as exc:
        raise click.UsageError(exc.message) from None


def _rate_limits() -> RateLimits:
    try:
        return RateLimits.from_env()
    except HooklineError as exc:
        raise click.UsageError(exc.message) from None


def _logging(json_logs: bool) -> None:
    from hookline.logs import configure

    configure(json_logs=json_logs)


@main.command()
@click.option("--database", help=DATABASE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-private-targets",
    is_flag=True,
    help="Deliver to loopback and private addresses too [env HOOKLINE_ALLOW_PRIVATE_TARGETS=1].",
)
@click.option("--no-deliver", is_flag=True, help="Serve the API only; run `hookline worker`s.")
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line.")
def serve(
    database: str | None,
    host: str,
    port: int,
    allow_private_targets: bool,
    no_deliver: bool,
    json_logs: bool,
) -> None:
    """Run the API, the dashboard and the delivery engine in one process."""
    import uvicorn

    from hookline.api.app import create_api

    _logging(json_logs)
    url = database_url(database)
    token = os.environ.get("HOOKLINE_ADMIN_TOKEN")
    if not token:
        token = "adm_" + secrets.token_urlsafe(24)
        click.echo(f"No HOOKLINE_ADMIN_TOKEN set; this run's admin token is: {token}", err=True)
    api = create_api(
        database_url=url,
        admin_token=token,
        settings=_settings(allow_private_targets),
        rate_limits=_rate_limits(),
        deliver=not no_deliver,
    )
    click.echo(f"hookline {__version__} on http://{host}:{port} with {_redact(url)}", err=True)
    uvicorn.run(
        api,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=15,
    )


@main.command()
@click.option("--database", help=DATABASE_HELP)
@click.option("--allow-private-targets", is_flag=True, help="Deliver to private addresses too.")
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line.")
def worker(database: str | None, allow_private_targets: bool, json_logs: bool) -> None:
    """Run a delivery-only process (scale out beside `hookline serve --no-deliver`)."""
    _logging(json_logs)
    settings = _settings(allow_private_targets)
    with contextlib.suppress(KeyboardInterrupt):
        _run_fast(_run_worker(database_url(database), settings))


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (it comes with uvicorn[standard]): a worker
    spends most of its time in the event loop's socket handling, which uvloop makes
    cheaper, as uvicorn already does for ``serve``."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _run_worker(url: str, settings: EngineSettings) -> None:
    from hookline.sender import Engine

    store = await _open_waiting(url)
    engine = Engine(store, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    logging.getLogger("hookline").info("worker %s delivering from %s", engine.owner, _redact(url))
    try:
        await stop.wait()
    finally:
        await engine.stop()
        await store.close()


async def _open_waiting(url: str) -> Store:
    """Open the store, waiting (with back-off) while the database is unreachable: a
    worker started before its database, or during a restart, just starts late."""
    from hookline.exceptions import StorageUnavailable
    from hookline.store import Store

    delay = 0.25
    while True:
        try:
            return await Store.open(url)
        except StorageUnavailable as exc:
            logging.getLogger("hookline").warning("waiting for the database: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@main.command()
@click.option("--database", help=DATABASE_HELP)
def migrate(database: str | None) -> None:
    """Bring the database schema up to date."""
    asyncio.run(_migrate(database_url(database)))


async def _migrate(url: str) -> None:
    from hookline.store.connector import connector_for

    connector = connector_for(url)
    await connector.open()
    try:
        before = await connector.schema_version()
        applied = await _apply_migrations(connector, before)
    finally:
        await connector.close()
    if applied:
        click.echo(f"migrated {_redact(url)} from version {before} to {applied[-1]}")
    else:
        click.echo(f"{_redact(url)} is up to date (version {before})")


async def _apply_migrations(connector: Connector, before: int) -> list[int]:
    """Migrate, with a progress bar when there is anything to apply."""
    from rich.console import Console

    from hookline.cli_admin import progress_bar
    from hookline.store.queries import load_migrations

    pending = [v for v, _, _ in load_migrations(connector.dialect) if v > before]
    if not pending:
        return await connector.migrate()
    with progress_bar(Console(stderr=True)) as progress:
        task = progress.add_task(f"migrating to version {pending[-1]}", total=len(pending))
        # The connector applies every step in one call; the bar completes when it returns.
        applied = await connector.migrate()
        progress.update(task, completed=len(applied))
    return applied


def _redact(url: str) -> str:
    """A database URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _register_optional_commands() -> None:
    """Commands that live beside the part of hookline they drive."""
    from hookline.cli_admin import commands as admin_commands
    from hookline.cli_keys import commands as key_commands
    from hookline.receiver.cli import commands as receiver_commands

    for command in [*admin_commands, *key_commands, *receiver_commands]:
        main.add_command(command)


_register_optional_commands()
