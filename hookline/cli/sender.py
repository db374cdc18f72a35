"""The sender's processes: ``hookline serve``, ``hookline worker`` and ``hookline migrate``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import click

from hookline import __version__
from hookline.cli.base import sender_database_option
from hookline.config import EngineSettings, RateLimits, check_admin_token, redact_url

if TYPE_CHECKING:
    from hookline.sender.tracing import SenderTracing
    from hookline.store import Store
    from hookline.store.connector import Connector


def _settings(allow_private_targets: bool) -> EngineSettings:
    return EngineSettings.from_env(allow_private_targets=allow_private_targets or None)


def _logging(json_logs: bool) -> None:
    from hookline.logs import configure

    configure(json_logs=json_logs)


@click.command()
@sender_database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-private-targets",
    is_flag=True,
    help="Deliver to loopback and private addresses too [env HOOKLINE_ALLOW_PRIVATE_TARGETS=1].",
)
@click.option("--no-deliver", is_flag=True, help="Serve the API only; run `hookline worker`s.")
@click.option(
    "--delivery-processes",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    envvar="HOOKLINE_DELIVERY_PROCESSES",
    show_envvar=True,
    help="Processes that deliver beside the API process, started and stopped with it; "
    "0 delivers in the API process itself.",
)
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line.")
def serve(
    database: str,
    host: str,
    port: int,
    allow_private_targets: bool,
    no_deliver: bool,
    delivery_processes: int,
    json_logs: bool,
) -> None:
    """Run the API, the dashboard and the delivery engine: one command, on two cores.

    The API runs in this process and the deliveries in --delivery-processes children
    that live and die with it. Creates the database file (SQLite) and brings its schema
    up to date.
    """
    from hookline import serving
    from hookline.sender.processes import worker_command
    from hookline.server import create_server

    _logging(json_logs)
    settings = _settings(allow_private_targets)
    rate_limits = RateLimits.from_env()
    server = serving.ServerSettings.from_env()
    token = os.environ.get("HOOKLINE_ADMIN_TOKEN")
    if token:
        check_admin_token(token)  # before anything is created or bound
    made_token = "" if token else "adm_" + secrets.token_urlsafe(24)
    # Startup in the order that lets every failure be one line before any banner: the
    # database (open, create, migrate), then the socket, then the app.
    asyncio.run(_prepare(database))
    sock = serving.bind(host, port)

    def announce() -> None:
        if made_token:
            click.echo(
                f"No HOOKLINE_ADMIN_TOKEN set; this run's admin token is: {made_token}", err=True
            )
        where = serving.address(sock)
        click.echo(f"hookline {__version__} on {where} with {redact_url(database)}", err=True)

    api = create_server(
        database_url=database,
        admin_token=token or made_token,
        settings=settings,
        rate_limits=rate_limits,
        deliver=not no_deliver,
        server=server,
        tracing=_tracing(),
        delivery_command=worker_command(
            database, allow_private_targets=allow_private_targets, json_logs=json_logs
        ),
        delivery_processes=delivery_processes,
    )
    serving.run(
        api,
        sock,
        settings=server,
        announce=announce,
        log_level="warning",
        timeout_graceful_shutdown=15,
    )
    if api.state.deliverers is not None and api.state.deliverers.failed:
        raise click.ClickException("a delivery process kept failing; hookline serve stopped")


def _tracing() -> SenderTracing | None:
    """The sender's tracing where an OTLP endpoint is configured (hookline.otel); where
    it is not, OpenTelemetry is not even imported."""
    from hookline import otel

    if not otel.configured():
        return None
    from hookline.sender.tracing import SenderTracing

    return SenderTracing.from_env()


async def _prepare(url: str) -> None:
    """Open the database as ``serve`` does (creating the file, migrating), then close it:
    the app's lifespan opens it again, in the server's event loop."""
    from hookline.store import Store

    store = await Store.open(url, create=True)
    await store.close()


@click.command()
@sender_database_option
@click.option("--allow-private-targets", is_flag=True, help="Deliver to private addresses too.")
@click.option(
    "--wait-for-database",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for an unreachable database at start (a supervisor restarting "
    "workers with the database may want this); 0: fail at once.",
)
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line.")
@click.option("--supervised", is_flag=True, hidden=True)
def worker(
    database: str,
    allow_private_targets: bool,
    wait_for_database: float,
    json_logs: bool,
    supervised: bool,
) -> None:
    """Run a delivery-only process (scale out beside `hookline serve --no-deliver`).

    Needs a database set up by `hookline migrate` or `hookline serve`. Meant for
    PostgreSQL: on SQLite, `hookline serve` already delivers, and a worker beside it
    adds a process on the same machine only (it says so at start).

    `--supervised` is how `hookline serve` starts its delivery processes: the worker
    stops when its stdin closes and reports on its stdout (hookline.sender.processes).
    """
    from hookline.serving import raise_open_file_limit

    _logging(json_logs)
    settings = _settings(allow_private_targets)
    raise_open_file_limit()  # a socket for each delivery in flight, as in `serve`
    with contextlib.suppress(KeyboardInterrupt):
        _run_fast(_run_worker(database, settings, wait_for_database, supervised))


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


SQLITE_WORKER_WARNING = (
    "warning: a worker on SQLite delivers beside `hookline serve` on this machine only "
    "(serve delivers by itself); to scale out across hosts, use PostgreSQL"
)


async def _run_worker(url: str, settings: EngineSettings, wait: float, supervised: bool) -> None:
    from hookline.sender import Engine
    from hookline.sender.processes import Reporter, report_to_parent, write_report

    store = await _open_waiting(url, wait)
    if store.db.dialect == "sqlite" and not supervised:
        click.echo(SQLITE_WORKER_WARNING, err=True)
    tracing = _tracing()
    reporter = Reporter()
    engine = Engine(store, settings, observers=[reporter] if supervised else None, tracing=tracing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    reporting = asyncio.create_task(report_to_parent(reporter, stop)) if supervised else None
    log = logging.getLogger("hookline")
    log.info("worker %s delivering from %s", engine.owner, redact_url(url))
    try:
        await stop.wait()
    finally:
        await engine.stop()
        await store.close()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)
        if reporting is not None:
            await reporting
            write_report(reporter)  # what the engine finished while it stopped


async def _open_waiting(url: str, wait: float) -> Store:
    """Open the store (an existing database only), waiting up to ``wait`` seconds, with
    back-off, while the database is unreachable."""
    from hookline.exceptions import StorageUnavailable
    from hookline.store import Store

    deadline = time.monotonic() + wait
    delay = 0.25
    while True:
        try:
            return await Store.open(url, create=False)
        except StorageUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            logging.getLogger("hookline").warning("waiting for the database: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@click.command()
@sender_database_option
def migrate(database: str) -> None:
    """Bring the database schema up to date (creating the SQLite file if it is missing)."""
    asyncio.run(_migrate(database))


async def _migrate(url: str) -> None:
    from hookline.store.connector import connector_for

    connector = connector_for(url, create=True)
    await connector.open()
    try:
        before = await connector.schema_version()
        applied = await _apply_migrations(connector, before)
    finally:
        await connector.close()
    if applied:
        click.echo(f"migrated {redact_url(url)} from version {before} to {applied[-1]}")
    else:
        click.echo(f"{redact_url(url)} is up to date (version {before})")


async def _apply_migrations(connector: Connector, before: int) -> list[int]:
    """Migrate, with a progress bar when there is anything to apply."""
    from rich.console import Console

    from hookline.cli.admin import progress_bar
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


commands = [serve, worker, migrate]
