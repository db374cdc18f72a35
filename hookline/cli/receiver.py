"""The receiver's commands: ``receive``, ``dead-letters``, ``send-test`` and ``verify``.

``hookline.cli`` adds every command in ``commands`` to the ``hookline`` group.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import orjson

from hookline.cli.base import database_option
from hookline.events import EVENT_TYPES
from hookline.exceptions import HooklineError
from hookline.receiver._config import DEFAULT_INBOX_URL, INBOX_URL_ENV

if TYPE_CHECKING:
    from hookline.receiver.inbox import Inbox

T = TypeVar("T")


def load_receiver(target: str) -> Any:
    """Import ``MODULE:ATTR`` (from the working directory too, like uvicorn does)."""
    from hookline.receiver._receiver import Receiver

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.BadParameter(f"{target!r} is not MODULE:ATTR", param_hint="TARGET")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {target!r}: {exc}", param_hint="TARGET") from exc
    if not isinstance(found, Receiver) and callable(found):
        found = found()
    if not isinstance(found, Receiver):
        raise click.BadParameter(f"{target!r} is not a hookline Receiver", param_hint="TARGET")
    return found


#: ``--database`` of the commands that read an inbox someone else set up.
inbox_database_option = database_option(
    envvar=INBOX_URL_ENV,
    default=DEFAULT_INBOX_URL,
    help="The receiver's inbox: sqlite:///path.db or postgresql://user@host/db.",
)


@click.command()
@click.argument("target", metavar="MODULE:ATTR")
@database_option(
    envvar=INBOX_URL_ENV,
    default=None,
    help=f"The inbox, created if it is a missing SQLite file (its directory must exist) "
    f"[default: the receiver's own, else {DEFAULT_INBOX_URL}].",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--concurrency", type=click.IntRange(min=1), help="Users handled at once.")
@click.option("--lease-seconds", type=click.FloatRange(min=0.1), help="Lane lease length.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), help="Seconds between polls.")
@click.option(
    "--workers/--no-workers",
    default=True,
    show_default=True,
    help="Run handlers in this process (--no-workers: only accept; run workers elsewhere).",
)
@click.option("--log-level", default="warning", show_default=True)
def receive(
    target: str,
    database: str | None,
    host: str,
    port: int,
    concurrency: int | None,
    lease_seconds: float | None,
    poll_interval: float | None,
    workers: bool,
    log_level: str,
) -> None:
    """Serve POST /webhooks for the receiver at MODULE:ATTR and run its workers."""
    from hookline import serving
    from hookline.config import redact_url
    from hookline.receiver.tracing import configure_from_env

    limits = serving.ServerSettings.from_env()
    receiver = load_receiver(target)
    # After the app's module is imported: where it set up OpenTelemetry itself, that stays.
    tracing = configure_from_env()
    changes = {
        "database": database,
        "concurrency": concurrency,
        "lease_seconds": lease_seconds,
        "poll_interval": poll_interval,
    }
    receiver.configure(**{k: v for k, v in changes.items() if v is not None})
    inbox = receiver.settings.database
    # As ``hookline serve``: the inbox first, then the socket, and the banner once started.
    asyncio.run(_prepare_inbox(inbox))
    sock = serving.bind(host, port)

    def announce() -> None:
        where = serving.address(sock)
        click.echo(f"hookline receive: POST {where}/webhooks, inbox {redact_url(inbox)}", err=True)

    serving.run(
        receiver.asgi_app(workers=workers),
        sock,
        settings=limits,
        announce=announce,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,  # the receiver never looks at the client's address
    )
    if tracing is not None:
        tracing.shutdown()  # export the last spans


async def _prepare_inbox(url: str) -> None:
    """Open the inbox (creating a missing SQLite file) and close it again: a wrong URL
    fails here, as one line, before the server starts; its lifespan opens it again."""
    from hookline.receiver.inbox import open_inbox

    inbox = open_inbox(url, create=True)
    await inbox.open()
    await inbox.close()


# -- dead letters ---------------------------------------------------------------------


def _with_inbox(database: str, work: Callable[[Inbox], Awaitable[T]]) -> T:
    """Open an existing inbox (these commands create none), run ``work``, close."""
    from hookline.receiver.inbox import open_inbox

    async def run() -> T:
        inbox = open_inbox(database, create=False)
        await inbox.open()
        try:
            return await work(inbox)
        finally:
            await inbox.close()

    return asyncio.run(run())


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@click.group("dead-letters")
def dead_letters() -> None:
    """Webhooks whose handlers failed every retry: list, show, replay."""


@dead_letters.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@inbox_database_option
def list_dead(database: str, limit: int) -> None:
    """List dead letters, oldest first."""
    from rich.console import Console
    from rich.table import Table

    rows = _with_inbox(database, lambda inbox: inbox.list_webhooks("dead", limit))
    if not rows:
        click.echo("No dead letters.")
        return
    table = Table("id", "event type", "user", "event id", "runs", "failed at (UTC)", "error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["event_type"],
            row["user_id"],
            row["event_id"] or "-",
            str(row["attempts"]),
            _when(row["finished_at"]),
            _last_line(row["last_error"]),
        )
    Console().print(table)


@dead_letters.command("show")
@click.argument("webhook_id", type=int)
@inbox_database_option
def show_dead(database: str, webhook_id: int) -> None:
    """Show one webhook: its fields, its body and the last error in full."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    row = _with_inbox(database, lambda inbox: inbox.get_webhook(webhook_id))
    if row is None:
        raise click.ClickException(f"no webhook {webhook_id} in {database}")
    console = Console()
    fields = Table(show_header=False, box=None)
    for name in ("id", "status", "event_type", "user_id", "event_id", "token", "ts", "attempts"):
        fields.add_row(name, str(row[name]))
    fields.add_row("received_at", _when(row["received_at"]))
    fields.add_row("finished_at", _when(row["finished_at"]))
    console.print(fields)
    pretty = orjson.dumps(orjson.loads(bytes(row["body"])), option=orjson.OPT_INDENT_2)
    console.print(Syntax(pretty.decode(), "json"))
    if row["last_error"]:
        console.print("[bold]last error[/bold]")
        console.print(row["last_error"], markup=False, highlight=False)


@dead_letters.command("replay")
@click.argument("webhook_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@inbox_database_option
def replay_dead(database: str, webhook_id: int | None, replay_all: bool) -> None:
    """Queue dead letters again: their handlers run as if the webhooks had just arrived."""
    if (webhook_id is None) == (not replay_all):
        raise click.UsageError("give one webhook id, or --all")
    ids = _with_inbox(database, lambda inbox: inbox.replay_dead(webhook_id, time.time()))
    if not ids and webhook_id is not None:
        raise click.ClickException(f"webhook {webhook_id} is not a dead letter")
    click.echo(f"Replaying {len(ids)} webhook(s): {', '.join(map(str, ids)) or '-'}")


# -- tools for app developers ---------------------------------------------------------


@click.command("send-test")
@click.option("--url", required=True, help="The receiver's webhook URL.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    envvar="HOOKLINE_VERIFICATION_KEY",
    help="Verification key (repeat to sign with several, as during a rotation).",
)
@click.option(
    "--event", "event_type", required=True, type=click.Choice(EVENT_TYPES), help="Event type."
)
@click.option("--user-id", default="test-user", show_default=True)
@click.option("--data", "data_file", type=click.File("rb"), help="JSON file to send as data.")
@click.option("--timeout", default=10.0, show_default=True, type=float)
def send_test(
    url: str,
    keys: tuple[str, ...],
    event_type: str,
    user_id: str,
    data_file: IO[bytes] | None,
    timeout: float,
) -> None:
    """Send one correctly signed sample webhook of any type to URL."""
    from hookline.receiver.samples import signed_sample

    data_json = None
    if data_file is not None:
        data_json = data_file.read()
        if not isinstance(orjson.loads(data_json), dict):
            raise click.BadParameter("the data file must hold one JSON object", param_hint="--data")
    headers, body = signed_sample(list(keys), event_type, user_id=user_id, data_json=data_json)
    status, answer = asyncio.run(_post(url, headers, body, timeout))
    click.echo(f"{status} {answer.decode(errors='replace')}")
    if not 200 <= status < 300:
        raise SystemExit(1)


async def _post(
    url: str, headers: dict[str, str], body: bytes, timeout: float
) -> tuple[int, bytes]:
    import aiohttp

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            return response.status, await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise click.ClickException(f"could not reach {url}: {exc!r}") from exc


@click.command("verify")
@click.argument("request_file", type=click.File("rb"))
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    envvar="HOOKLINE_VERIFICATION_KEY",
    help="Verification key (repeat for several).",
)
@click.option("--tolerance", default=300, show_default=True, help="Allowed clock skew, seconds.")
@click.option("--at", "at", type=float, help="Check the time window as of this Unix time.")
@click.option("--ignore-time", is_flag=True, help="Skip the time window (old captures).")
@click.option(
    "--strict/--selz-only",
    default=True,
    show_default=True,
    help="Require the body signature (webhook-signature), as a receiver does by default; "
    "--selz-only checks a request as a receiver built with require_standard=False does.",
)
def verify(
    request_file: IO[bytes],
    keys: tuple[str, ...],
    tolerance: int,
    at: float | None,
    ignore_time: bool,
    strict: bool,
) -> None:
    """Check a saved request (JSON {"headers", "body"} or an HTTP message) and say what is wrong.

    Exits 0 if the receiver would accept it, 1 if not.
    """
    from hookline.receiver.diagnose import diagnose, load_request

    try:
        headers, body = load_request(request_file.read())
    except HooklineError as exc:
        raise click.ClickException(exc.message) from exc
    report = diagnose(
        headers,
        body,
        keys,
        tolerance_seconds=10**12 if ignore_time else tolerance,
        now=at,
        require_standard=strict,
    )
    for check in report.checks:
        mark = "ok  " if check.ok else ("FAIL" if check.fatal else "warn")
        click.echo(f"{mark}  {check.name}: {check.message}")
    click.echo("valid: the receiver would accept this request" if report.valid else "INVALID")
    if not report.valid:
        raise SystemExit(1)


commands: list[click.Command] = [receive, dead_letters, send_test, verify]
