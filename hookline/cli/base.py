"""What every ``hookline`` command shares: one-line errors and the ``--database`` option.

A command raises hookline's own errors (``hookline.exceptions``) like any other code;
the ``hookline`` group turns each into one line on stderr and exit code 1, in one
place, so no command prints a traceback for a mistake a person can correct (a wrong
URL, a database that is down, a missing file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from hookline.config import DATABASE_URL_ENV, DEFAULT_DATABASE_URL
from hookline.exceptions import HooklineError, StorageUnavailable

F = TypeVar("F", bound=Callable[..., Any])

#: Said after a "database unreachable" error, which names only what failed.
UNREACHABLE_HINT = "is the database running, and does the database URL point at it?"


def one_line(exc: HooklineError) -> str:
    """The error as one line that says what is wrong and, where needed, what to do."""
    text = " ".join(exc.message.split())
    if isinstance(exc, StorageUnavailable):
        text = f"{text} ({UNREACHABLE_HINT})"
    return text


class HooklineGroup(click.Group):
    """A command group whose commands' ``HooklineError``s end as one line, exit code 1.

    Subgroups run inside this group's ``invoke``, so the root group alone covers every
    command.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HooklineError as exc:
            raise click.ClickException(one_line(exc)) from None


def database_option(*, envvar: str, default: str | None, help: str) -> Callable[[F], F]:
    """``--database URL``, the same on every command: its variable and default in the help."""
    return click.option(
        "--database",
        metavar="URL",
        envvar=envvar,
        default=default,
        show_default=default is not None,
        show_envvar=True,
        help=help,
    )


#: ``--database`` of the sender's commands (``serve``, ``worker``, ``migrate``, ``apps``, ...).
sender_database_option = database_option(
    envvar=DATABASE_URL_ENV,
    default=DEFAULT_DATABASE_URL,
    help="The sender's database: sqlite:///path.db (a file; its directory must exist) "
    "or postgresql://user@host/db.",
)
