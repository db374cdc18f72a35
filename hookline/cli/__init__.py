"""The ``hookline`` command: one click group, its commands in one module per part.

``sender`` runs the sender (``serve``, ``worker``, ``migrate``), ``admin`` works on its
database (``apps``, ``endpoints``, ``events``, ``deliveries``), ``keys`` seals
verification keys, ``receiver`` runs and inspects a receiver (``receive``,
``dead-letters``, ``send-test``, ``verify``), ``outbox`` keeps the outbox in a platform's
database and relays it (``outbox``, ``relay``); ``base`` holds what they share.
"""

from __future__ import annotations

import click

from hookline import __version__
from hookline.cli import admin, keys, outbox, receiver, sender
from hookline.cli.base import HooklineGroup

__all__ = ["main"]


@click.group(cls=HooklineGroup)
@click.version_option(__version__, prog_name="hookline")
def main() -> None:
    """hookline: signed, retried, ordered webhooks, sender and receiver."""


for _command in [
    *sender.commands,
    *admin.commands,
    *keys.commands,
    *outbox.commands,
    *receiver.commands,
]:
    main.add_command(_command)
