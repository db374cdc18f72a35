"""The outbox's commands: ``outbox install|status|uninstall`` and ``relay``.

The outbox is a database of its own, the platform's, so its commands take its URL
(``--database``, or HOOKLINE_OUTBOX_DATABASE_URL) and never the sender's
``HOOKLINE_DATABASE_URL``: a forgotten option cannot put the outbox into hookline's
database, or the relay read from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import click

from hookline.config import redact_url

OUTBOX_URL_ENV = "HOOKLINE_OUTBOX_DATABASE_URL"

_outbox_database = click.option(
    "--database",
    metavar="URL",
    envvar=OUTBOX_URL_ENV,
    show_envvar=True,
    required=True,
    help="The platform's PostgreSQL database, where the outbox lives.",
)


@click.group()
def outbox() -> None:
    """The outbox in the platform's database, for when hookline's database is another.

    `hookline.publish(conn, ...)` on a connection to a database with an outbox writes
    the event there, inside the platform's transaction; `hookline relay` moves it on.
    """


@outbox.command()
@_outbox_database
def install(database: str) -> None:
    """Create the outbox (table hookline.outbox) in the platform's database."""
    from hookline.outbox import source

    made = asyncio.run(source.install(database))
    state = "installed in" if made else "already in"
    click.echo(f"outbox {state} {redact_url(database)}; move its rows on with `hookline relay`")


@outbox.command()
@_outbox_database
def status(database: str) -> None:
    """Rows waiting for the relay, rows hookline refused, and the oldest's age."""
    from hookline.outbox import source

    row = asyncio.run(source.status(database))
    age = row["oldest_seconds"]
    oldest = f", the oldest {float(age):.1f} s old" if age is not None else ""
    click.echo(f"{row['pending']} waiting{oldest}; {row['failed']} refused by hookline")


@outbox.command()
@_outbox_database
@click.option("--force", is_flag=True, help="Drop it even with rows in it.")
def uninstall(database: str, force: bool) -> None:
    """Drop the outbox (once the relay has emptied it): publish then writes to hookline's
    tables, if this database has them, or refuses."""
    from hookline.outbox import source

    dropped = asyncio.run(source.uninstall(database, force=force))
    click.echo(f"outbox dropped from {redact_url(database)} ({dropped} row(s) with it)")


@click.command()
@click.option(
    "--from",
    "from_",
    metavar="URL",
    envvar=OUTBOX_URL_ENV,
    show_envvar=True,
    required=True,
    help="The platform's PostgreSQL database, with the outbox.",
)
@click.option(
    "--to",
    metavar="URL",
    required=True,
    help="hookline's API (http://host:8080) or its database (postgresql://..., "
    "sqlite:///path.db or a file path).",
)
@click.option(
    "--token",
    envvar="HOOKLINE_ADMIN_TOKEN",
    show_envvar=True,
    help="hookline's admin token, for an http(s) --to. Prefer the variable: an option "
    "shows in the process list.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=500,
    show_default=True,
    help="Rows published in one request (one transaction of hookline's).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="The longest wait for new rows when no notification arrives.",
)
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line.")
def relay(from_: str, to: str, token: str | None, batch: int, poll: float, json_logs: bool) -> None:
    """Move the outbox's committed rows to hookline, oldest first, each event once.

    A row is deleted from the outbox only after hookline stored its event; one sent
    again after a crash is a duplicate hookline recognises. Runs until SIGINT or
    SIGTERM; waits, with a log line, while either database or hookline is away. Two
    relays on one outbox take turns.
    """
    from hookline.logs import configure
    from hookline.outbox.relay import Relay, RelaySettings
    from hookline.outbox.source import check_url
    from hookline.outbox.targets import target_for

    configure(json_logs=json_logs)
    check_url(from_)
    target = target_for(to, token)
    the_relay = Relay(from_, target, RelaySettings(batch=batch, poll=poll))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, the_relay.stop)
        await the_relay.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


commands = [outbox, relay]
