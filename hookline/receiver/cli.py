"""The receiver's commands: ``receive``, ``dead-letters``, ``send-test`` and ``verify``.

``hookline/cli.py`` adds every command in ``commands`` to the ``hookline`` group.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from hookline.receiver._config import DEFAULT_INBOX_URL, INBOX_URL_ENV


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


@click.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option(
    "--database",
    envvar=INBOX_URL_ENV,
    help=f"Inbox URL (default: the receiver's own, else {DEFAULT_INBOX_URL}).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--concurrency", type=click.IntRange(min=1), help="Users handled at once.")
@click.option("--lease-seconds", type=click.FloatRange(min=0.1), help="Lane lease length.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), help="Seconds between polls.")
@click.option("--log-level", default="warning", show_default=True)
def receive(
    target: str,
    database: str | None,
    host: str,
    port: int,
    concurrency: int | None,
    lease_seconds: float | None,
    poll_interval: float | None,
    log_level: str,
) -> None:
    """Serve POST /webhooks for the receiver at MODULE:ATTR and run its workers."""
    import uvicorn

    receiver = load_receiver(target)
    changes = {
        "database": database,
        "concurrency": concurrency,
        "lease_seconds": lease_seconds,
        "poll_interval": poll_interval,
    }
    receiver.configure(**{k: v for k, v in changes.items() if v is not None})
    click.echo(
        f"hookline receive: POST http://{host}:{port}/webhooks, inbox {receiver.settings.database}",
        err=True,
    )
    uvicorn.run(
        receiver.asgi_app(),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,
    )


commands: list[click.Command] = [receive]
