"""The ``hookline`` command."""

from __future__ import annotations

import click

from hookline import __version__


@click.group()
@click.version_option(__version__, prog_name="hookline")
def main() -> None:
    """hookline: signed, retried, ordered webhooks, sender and receiver."""


def _register_optional_commands() -> None:
    """Commands that live beside the part of hookline they drive."""
    from hookline.receiver.cli import commands as receiver_commands

    for command in receiver_commands:
        main.add_command(command)


_register_optional_commands()
