"""Everyday operator commands: ``hookline apps|endpoints|events|deliveries ...``.

They work on the database directly (``--database``, like ``hookline migrate``), not
through a running server's HTTP API. The operator is on the machine that holds the
database anyway, so this needs no token and no server: it works while ``serve`` is down
(recovering deliveries after an outage is when it matters most), and with SQLite the
file is right there. What it changes, a running ``serve`` or ``worker`` picks up by
itself: published events and retried deliveries are due at once, and the engines find
due work by notification (PostgreSQL) or within their poll interval.

Output is rich tables on a terminal; long operations (a bulk recover, migrations) show
a progress bar.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hookline import rules
from hookline.cli.base import sender_database_option
from hookline.config import EngineSettings
from hookline.events import EVENT_TYPES, OPERATIONAL_EVENT_TYPES, WILDCARD, format_timestamp
from hookline.exceptions import HooklineError
from hookline.samples import sample_data
from hookline.store import App, Delivery, Endpoint, NewEvent, Store
from hookline.store.base import new_id

T = TypeVar("T")
STATUS_STYLE = {"delivered": "green", "failed": "red", "pending": "yellow", "retry": "yellow"}
RECOVER_BATCH = 500
#: Columns people copy into the next command, or read at a glance: never broken up.
NO_WRAP = frozenset({"id", "endpoint", "event type", "status", "created", "created (UTC)"})

database_option = sender_database_option


def _ruled(check: Callable[[Any], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that holds a value to one of ``hookline.rules`` (the API and the
    dashboard hold it to the same one, with the same message)."""

    def callback(_: click.Context, __: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except HooklineError as exc:
            raise click.BadParameter(exc.message) from None

    return callback


#: Delivery ids, as the store keeps them (64-bit).
DELIVERY_ID = click.IntRange(1, rules.INT64_MAX)
#: An endpoint's timeout in seconds, as the API takes it.
TIMEOUT = click.FloatRange(0, rules.TIMEOUT_MAX, min_open=True)


def _rate_limit(text: str) -> float | None:
    """``--rate-limit``: deliveries a second, or ``off`` (no limit)."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise HooklineError(
            f"{text!r}: give a number of deliveries a second (e.g. 20 or 0.5), or off"
        ) from None
    return rules.check_rate_limit(number)


rate_limit_option = click.option(
    "--rate-limit",
    metavar="PER_SECOND",
    callback=_ruled(_rate_limit),
    help="At most this many deliveries a second, across every worker (0.5: one every "
    "2 s); 'off' for no limit.",
)
rate_burst_option = click.option(
    "--rate-limit-burst",
    type=int,
    metavar="N",
    callback=_ruled(rules.check_rate_burst),
    help="With --rate-limit: how many may go at once after a quiet spell (default 1).",
)


def _console() -> Console:
    # Made per command, so output goes to whatever stdout is then (CliRunner in tests).
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped into grep or a file: rich would assume 80 columns and fold every row.
        console.width = 200
    return console


def _run(database: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store (an existing database: these commands create none), run ``work``,
    close. hookline's errors become one-line CLI errors in the ``hookline`` group."""

    async def main() -> T:
        store = await Store.open(database, create=False)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _when(value: Any) -> str:
    return "—" if value is None else format_timestamp(float(value)).replace("T", " ")


def _status(value: str) -> str:
    return f"[{STATUS_STYLE.get(value, 'default')}]{value}[/]"


def _events(types: tuple[str, ...]) -> str:
    return "all events" if types == (WILDCARD,) else ", ".join(types)


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in NO_WRAP)
    return table


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(text: str, now: float | None = None) -> float:
    """``90m``, ``24h``, ``7d`` (back from now) or an ISO date/time in UTC: epoch seconds."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        return now - float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: use 90m, 24h, 7d or 2026-11-27T12:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# -- apps --------------------------------------------------------------------------------


@click.group()
def apps() -> None:
    """Apps: the third parties that receive webhooks."""


@apps.command("list")
@database_option
def apps_list(database: str) -> None:
    """Every app, with its endpoints."""

    async def work(store: Store) -> list[tuple[App, list[Endpoint]]]:
        return [(a, await store.list_endpoints(a.id)) for a in await store.list_apps()]

    table = _table("id", "name", "endpoints", "created (UTC)")
    for app, endpoints in _run(database, work):
        off = sum(1 for e in endpoints if not e.enabled)
        count = f"{len(endpoints)}" + (f" [red]({off} disabled)[/]" if off else "")
        table.add_row(app.id, app.name, count, _when(app.created_at))
    _console().print(table)


operator_url_option = click.option(
    "--operator-url",
    metavar="URL",
    help="Where hookline sends its own events about the app's endpoints (disabled, "
    "enabled again, recovering; deliveries failed for good).",
)


@apps.command("create")
@click.argument("name", callback=_ruled(rules.APP_NAME.check))
@operator_url_option
@click.option(
    "--allow-private-targets", is_flag=True, help="Accept a loopback or private operator URL."
)
@database_option
def apps_create(
    name: str, operator_url: str | None, allow_private_targets: bool, database: str
) -> None:
    """Create an app and print its API key (shown this once) and verification key."""
    if operator_url is not None:
        operator_url = _checked_url(operator_url, allow_private_targets, "--operator-url")
    app, api_key = _run(database, lambda store: store.create_app(name, operator_url))
    console = _console()
    console.print(f"id                {app.id}")
    console.print(f"api_key           {api_key}   [dim](shown once; keep it)[/]")
    console.print(f"verification_key  {app.verification_key}")
    if operator_url is not None:
        console.print(f"operator_url      {operator_url}")


@apps.command("update")
@click.argument("app_id")
@click.option("--name", callback=_ruled(rules.APP_NAME.check), help="A new name.")
@operator_url_option
@click.option("--no-operator-url", is_flag=True, help="Send the app no operational events.")
@click.option(
    "--allow-private-targets", is_flag=True, help="Accept a loopback or private operator URL."
)
@database_option
def apps_update(
    app_id: str,
    name: str | None,
    operator_url: str | None,
    no_operator_url: bool,
    allow_private_targets: bool,
    database: str,
) -> None:
    """Rename an app, or set or remove its operator URL."""
    if operator_url is not None and no_operator_url:
        raise click.UsageError("give --operator-url or --no-operator-url, not both")
    if operator_url is not None:
        operator_url = _checked_url(operator_url, allow_private_targets, "--operator-url")

    async def work(store: Store) -> App:
        app = await store.get_app(app_id)
        if name is not None:
            app = await store.rename_app(app_id, name)
        if operator_url is not None or no_operator_url:
            app = await store.set_operator_url(app_id, operator_url)
        return app

    app = _run(database, work)
    console = _console()
    console.print(f"[bold]{app.name}[/]  {app.id}")
    console.print(f"operator_url      {app.operator_url or 'none'}")


@apps.command("install")
@click.argument("app_id")
@click.argument("user_id", callback=_ruled(rules.USER_ID.check))
@database_option
def apps_install(app_id: str, user_id: str, database: str) -> None:
    """Record that USER_ID (a store) installed the app: its events now reach the app."""
    _row, created = _run(database, lambda store: store.install(app_id, user_id))
    _console().print(f"{user_id} {'installed' if created else 'had already installed'} {app_id}")


@apps.command("show")
@click.argument("app_id")
@database_option
def apps_show(app_id: str, database: str) -> None:
    """One app: its keys' state, installations and endpoints."""

    async def work(store: Store) -> tuple[App, list[Endpoint], int]:
        app = await store.get_app(app_id)
        installations = await store.count_installations(app_id)
        return app, await store.list_endpoints(app_id), installations

    app, endpoints, installations = _run(database, work)
    console = _console()
    console.print(f"[bold]{app.name}[/]  {app.id}")
    console.print(f"created           {_when(app.created_at)}")
    console.print(f"installations     {installations}")
    console.print(f"operator_url      {app.operator_url or 'none'}")
    rotation = "none"
    if app.next_verification_key:
        rotation = f"in progress, the new key signs from {_when(app.key_switch_at)}"
    console.print(f"key rotation      {rotation}")
    console.print(_endpoint_table(endpoints))


# -- endpoints ---------------------------------------------------------------------------


def _rate(e: Endpoint) -> str:
    """The endpoint's rate limit, and its pace while a 429 or 503 slows it down."""
    shown = "—"
    if e.rate_limit is not None:
        shown = f"{e.rate_limit:g}/s"
        if e.rate_limit_burst > 1:
            shown += f", burst {e.rate_limit_burst}"
    if e.pace:
        shown += f"\n[yellow]slowed down: {e.pace:.3g} s apart[/]"
    return shown


def _endpoint_table(endpoints: list[Endpoint]) -> Table:
    table = _table("id", "url", "events", "state", "timeout", "rate limit", "headers")
    for e in endpoints:
        state = "[green]enabled[/]" if e.enabled else f"[red]disabled[/]: {e.disabled_reason}"
        if e.operational:
            state += "\n[dim]operational: the app's operator_url[/]"
        # The store hands endpoints out with their header values masked already.
        headers = "\n".join(f"{name}: {value}" for name, value in e.headers.items())
        table.add_row(
            e.id,
            e.url,
            _events(e.event_types),
            state,
            f"{e.timeout:g} s",
            _rate(e),
            escape(headers),
        )
    return table


def _headers(
    given: tuple[str, ...], basic: str | None, bearer: str | None
) -> dict[str, str | None]:
    """``--header 'Name: value'`` (as curl takes it), ``--basic-auth``, ``--bearer-token``:
    all of them become the endpoint's headers."""
    headers: dict[str, str | None] = {}
    for item in given:
        name, colon, value = item.partition(":")
        if not colon:
            raise click.BadParameter("write a header as 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()
    if basic is not None and ":" not in basic:
        raise click.BadParameter("write it as USER:PASSWORD", param_hint="--basic-auth")
    user, _, password = (basic or "").partition(":")
    try:
        return rules.with_authorization(
            headers, basic=(user, password) if basic is not None else None, bearer=bearer
        )
    except HooklineError as exc:
        raise click.UsageError(exc.message) from None


header_options = [
    click.option(
        "--header",
        "header_items",
        multiple=True,
        metavar="'NAME: VALUE'",
        help="A header to send with every delivery (repeat for more); kept sealed.",
    ),
    click.option("--basic-auth", metavar="USER:PASSWORD", help="HTTP basic auth."),
    click.option("--bearer-token", metavar="TOKEN", help="Authorization: Bearer TOKEN."),
    click.option(
        "--client-cert",
        type=click.File("r"),
        help="A PEM client certificate, for endpoints that require mutual TLS.",
    ),
    click.option(
        "--client-key",
        type=click.File("r"),
        help="The PEM private key of --client-cert (kept sealed).",
    ),
]


def _client_tls(cert: TextIO | None, key: TextIO | None) -> dict[str, Any]:
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise click.UsageError("give --client-cert and --client-key together")
    return {"client_cert": cert.read(), "client_key": key.read()}


def with_header_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(header_options):
        command = option(command)
    return command


def _event_filter(events: tuple[str, ...]) -> list[str]:
    try:
        return rules.check_event_filter(list(events))
    except HooklineError as exc:
        raise click.BadParameter(exc.message, param_hint="--event") from None


def _checked_url(url: str, allow_private_targets: bool, option: str = "--url") -> str:
    settings = EngineSettings.from_env(allow_private_targets=allow_private_targets or None)
    try:
        return rules.check_url(url, allow_private=settings.allow_private_targets)
    except HooklineError as exc:
        raise click.BadParameter(exc.message, param_hint=option) from None


@click.group()
def endpoints() -> None:
    """Endpoints: where an app's webhooks go."""


@endpoints.command("list")
@click.option("--app", "app_id", required=True, help="The app's id.")
@database_option
def endpoints_list(app_id: str, database: str) -> None:
    """The endpoints of one app."""

    async def work(store: Store) -> list[Endpoint]:
        await store.get_app(app_id)
        return await store.list_endpoints(app_id)

    _console().print(_endpoint_table(_run(database, work)))


private_option = click.option(
    "--allow-private-targets", is_flag=True, help="Accept loopback and private addresses."
)
event_option = click.option(
    "--event",
    "events",
    multiple=True,
    metavar="TYPE",
    help="An event type to send (repeat for more); '*' for all events.",
)


@endpoints.command("create")
@click.option("--app", "app_id", required=True, help="The app's id.")
@click.option("--url", required=True, help="The callback URL.")
@event_option
@click.option("--timeout", type=TIMEOUT, default=10.0, show_default=True)
@rate_limit_option
@rate_burst_option
@with_header_options
@private_option
@database_option
def endpoints_create(
    app_id: str,
    url: str,
    events: tuple[str, ...],
    timeout: float,
    rate_limit: float | None,
    rate_limit_burst: int | None,
    header_items: tuple[str, ...],
    basic_auth: str | None,
    bearer_token: str | None,
    client_cert: TextIO | None,
    client_key: TextIO | None,
    allow_private_targets: bool,
    database: str,
) -> None:
    """Register a callback URL for some event types (all of them without --event)."""
    event_types = _event_filter(events or (WILDCARD,))
    url = _checked_url(url, allow_private_targets)
    headers = {
        k: v for k, v in _headers(header_items, basic_auth, bearer_token).items() if v is not None
    }
    row = _run(
        database,
        lambda store: store.create_endpoint(
            app_id,
            url=url,
            event_types=event_types,
            timeout=timeout,
            headers=headers,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst or 1,
            **_client_tls(client_cert, client_key),
        ),
    )
    _console().print(_endpoint_table([row]))


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--url", help="A new callback URL.")
@event_option
@click.option("--timeout", type=TIMEOUT)
@rate_limit_option
@rate_burst_option
@with_header_options
@click.option(
    "--remove-header", "removed", multiple=True, metavar="NAME", help="A header to stop sending."
)
@private_option
@database_option
def endpoints_update(
    endpoint_id: str,
    url: str | None,
    events: tuple[str, ...],
    timeout: float | None,
    rate_limit: float | None,
    rate_limit_burst: int | None,
    header_items: tuple[str, ...],
    basic_auth: str | None,
    bearer_token: str | None,
    client_cert: TextIO | None,
    client_key: TextIO | None,
    removed: tuple[str, ...],
    allow_private_targets: bool,
    database: str,
) -> None:
    """Change an endpoint's URL, event types, timeout, rate limit or headers; the rest
    stays."""
    changes: dict[str, Any] = {}
    if (
        click.get_current_context().get_parameter_source("rate_limit")
        == ParameterSource.COMMANDLINE
    ):
        changes["rate_limit"] = rate_limit  # None: 'off'
    if rate_limit_burst is not None:
        changes["rate_limit_burst"] = rate_limit_burst
    headers = _headers(header_items, basic_auth, bearer_token)
    headers.update(dict.fromkeys(removed))
    if headers:
        changes["headers"] = headers
    changes.update(_client_tls(client_cert, client_key))
    if url is not None:
        changes["url"] = _checked_url(url, allow_private_targets)
    if events:
        changes["event_types"] = _event_filter(events)
    if timeout is not None:
        changes["timeout"] = timeout
    if not changes:
        raise click.UsageError(
            "nothing to change: give --url, --event, --timeout, --rate-limit, "
            "--rate-limit-burst, --header, --remove-header or --client-cert"
        )
    row = _run(database, lambda store: store.update_endpoint(endpoint_id, **changes))
    _console().print(_endpoint_table([row]))


@endpoints.command("disable")
@click.argument("endpoint_id")
@database_option
def endpoints_disable(endpoint_id: str, database: str) -> None:
    """Stop sending to an endpoint; its deliveries wait, none is dropped."""
    row = _run(database, lambda store: store.update_endpoint(endpoint_id, enabled=False))
    _console().print(_endpoint_table([row]))


@endpoints.command("enable")
@click.argument("endpoint_id")
@database_option
def endpoints_enable(endpoint_id: str, database: str) -> None:
    """Send to an endpoint again, starting with the deliveries that waited."""
    row = _run(database, lambda store: store.update_endpoint(endpoint_id, enabled=True))
    _console().print(_endpoint_table([row]))


# -- events ------------------------------------------------------------------------------


@click.group()
def events() -> None:
    """Events: changes in a store, published to every app the store installed."""


@events.command("publish")
@click.option("--type", "event_type", required=True, type=click.Choice(EVENT_TYPES))
@click.option(
    "--user",
    "user_id",
    required=True,
    callback=_ruled(rules.USER_ID.check),
    help="The store (user) the change is in.",
)
@click.option("--data", help="The changed object as JSON; a sample of the type without it.")
@click.option(
    "--id",
    "event_id",
    callback=_ruled(rules.EVENT_ID.check),
    help="A stable event id (publishing it again does nothing).",
)
@database_option
def events_publish(
    event_type: str, user_id: str, data: str | None, event_id: str | None, database: str
) -> None:
    """Publish one event: one delivery per matching endpoint of every app installed."""
    try:
        parsed = rules.parse_json(data) if data is not None else sample_data(event_type)
        text = rules.event_data(parsed, max_bytes=EngineSettings.from_env().max_event_bytes)
    except HooklineError as exc:
        raise click.BadParameter(exc.message, param_hint="--data") from None
    event = NewEvent(
        id=event_id or new_id("evt"), event_type=event_type, user_id=user_id, data=text
    )
    (published,) = _run(database, lambda store: store.publish([event]))
    note = " (already published: nothing new)" if published.duplicate else ""
    _console().print(f"{published.id}: {published.deliveries} delivery(ies){note}")


# -- deliveries --------------------------------------------------------------------------


@click.group()
def deliveries() -> None:
    """Deliveries: one event to one endpoint, with every attempt."""


@deliveries.command("list")
@click.option("--app", "app_id", required=True, help="The app's id.")
@click.option("--endpoint", "endpoint_id", help="Only this endpoint's.")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]))
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES + OPERATIONAL_EVENT_TYPES))
@click.option("--user", "user_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@database_option
def deliveries_list(
    app_id: str,
    endpoint_id: str | None,
    status: str | None,
    event_type: str | None,
    user_id: str | None,
    limit: int,
    database: str,
) -> None:
    """An app's deliveries, newest first."""

    async def work(store: Store) -> list[Delivery]:
        await store.get_app(app_id)
        return await store.list_deliveries(
            app_id,
            limit=limit,
            endpoint_id=endpoint_id,
            status=status,
            event_type=event_type,
            user_id=user_id,
            with_attempts=False,
        )

    table = _table("id", "event type", "user", "endpoint", "status", "tries", "code", "created")
    for d in _run(database, work):
        code = "—" if d.last_status_code is None else str(d.last_status_code)
        table.add_row(
            str(d.id),
            d.event_type,
            d.user_id,
            d.endpoint_id,
            _status(d.status),
            str(d.attempts),
            code,
            _when(d.created_at),
        )
    _console().print(table)


@deliveries.command("show")
@click.argument("delivery_id", type=DELIVERY_ID)
@database_option
def deliveries_show(delivery_id: int, database: str) -> None:
    """One delivery and every attempt, with status codes and response bodies."""
    d = _run(database, lambda store: store.get_delivery(delivery_id))
    console = _console()
    console.print(f"[bold]delivery {d.id}[/]  {_status(d.status)}")
    for label, value in (
        ("event", f"{d.event_id} ({d.event_type})"),
        ("user", d.user_id),
        ("endpoint", f"{d.endpoint_id} {d.url or ''}"),
        ("token", d.token),
        ("next attempt", _when(d.next_attempt_at)),
    ):
        console.print(f"{label:<14}{value}")
    table = _table("when (UTC)", "outcome", "code", "latency", "response / error")
    for n, a in enumerate(d.attempt_log):
        if d.attempts_omitted and n == d.omitted_after:
            table.add_row("…", "", "", "", f"{d.attempts_omitted} attempt(s) not kept")
        latency = "—" if a.latency_ms is None else f"{a.latency_ms:.1f} ms"
        code = "—" if a.status_code is None else str(a.status_code)
        body = " ".join(x for x in (a.response_excerpt, a.error) if x)
        table.add_row(_when(a.attempted_at), _status(a.outcome), code, latency, body)
    console.print(table)


@deliveries.command("retry")
@click.argument("delivery_ids", type=DELIVERY_ID, nargs=-1, required=True)
@database_option
def deliveries_retry(delivery_ids: tuple[int, ...], database: str) -> None:
    """Send finished deliveries again now, each with its own token and event_id."""
    moved = _run(database, lambda store: store.retry_deliveries(list(delivery_ids)))
    skipped = len(set(delivery_ids)) - moved
    note = f"; {skipped} left alone (pending already, or no such delivery)" if skipped else ""
    _console().print(f"{moved} delivery(ies) queued again{note}")


@deliveries.command("recover")
@click.option("--app", "app_id", help="Only this app's.")
@click.option("--endpoint", "endpoint_id", help="Only this endpoint's.")
@click.option("--since", help="Only those created since: 90m, 24h, 7d or an ISO time (UTC).")
@database_option
def deliveries_recover(
    app_id: str | None, endpoint_id: str | None, since: str | None, database: str
) -> None:
    """Send every failed delivery again (after an endpoint's outage, say), in batches."""
    start = parse_since(since) if since else None
    console = _console()

    async def work(store: Store) -> int:
        total = await store.count_failed_deliveries(
            app_id=app_id, endpoint_id=endpoint_id, since=start
        )
        if not total:
            return 0
        done, last = 0, 0
        with progress_bar(console) as progress:
            task = progress.add_task("recovering", total=total)
            # Pages by id: whatever fails again meanwhile is not picked up a second time.
            while ids := await store.failed_delivery_ids(
                app_id=app_id, endpoint_id=endpoint_id, since=start, after=last, limit=RECOVER_BATCH
            ):
                done += await store.retry_deliveries(ids)
                last = ids[-1]
                progress.update(task, completed=min(done, total))
        return done

    console.print(f"{_run(database, work)} failed delivery(ies) queued again")


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


commands = [apps, endpoints, events, deliveries]
