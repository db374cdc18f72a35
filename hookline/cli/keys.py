"""``hookline new-master-key`` and ``hookline rotate-master-key``: verification keys at
rest (see ``hookline.store.sealing`` and docs/operations.md)."""

from __future__ import annotations

import asyncio

import click

from hookline.cli.base import sender_database_option
from hookline.store.sealing import MASTER_KEY_ENV, OLD_MASTER_KEY_ENV, KeyBox, new_master_key


@click.command("new-master-key")
def new_master_key_command() -> None:
    """Print a fresh master key for HOOKLINE_MASTER_KEY."""
    click.echo(new_master_key())


@click.command("rotate-master-key")
@sender_database_option
@click.option(
    "--old",
    "old",
    envvar=OLD_MASTER_KEY_ENV,
    default="",
    help=f"The master key the keys are sealed with now; none if they are in the clear "
    f"[env {OLD_MASTER_KEY_ENV}].",
)
@click.option(
    "--new",
    "new",
    envvar=MASTER_KEY_ENV,
    default="",
    help=f"The master key to seal them with [env {MASTER_KEY_ENV}].",
)
@click.option("--decrypt", is_flag=True, help="Store the keys in the clear (no new master key).")
def rotate_master_key(database: str, old: str, new: str, decrypt: bool) -> None:
    """Seal every verification key again with a new master key.

    Safe to run while hookline serves: processes that know both keys (the new one in
    HOOKLINE_MASTER_KEY, the old one in HOOKLINE_MASTER_KEY_OLD) read either kind, and
    an interrupted run is simply run again.
    """
    if not new and not decrypt:
        raise click.UsageError(f"give the new master key ({MASTER_KEY_ENV} or --new), or --decrypt")
    if new and decrypt:
        raise click.UsageError("--decrypt stores the keys in the clear: give no new key with it")
    total, endpoints = asyncio.run(_reseal(database, old, None if decrypt else new))
    how = "in the clear" if decrypt else "sealed with the new master key"
    click.echo(f"{total} app(s): verification keys now {how}", err=True)
    click.echo(f"{endpoints} endpoint(s): headers now {how}", err=True)


async def _reseal(url: str, old: str, new: str | None) -> tuple[int, int]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from hookline.store import Store

    # Reads values sealed with either key, so a second run after an interruption works.
    reader = KeyBox(None, tuple(k for k in (old, new) if k))
    store = await Store.open(url, keys=reader, create=False)
    try:
        with Progress(
            TextColumn("re-sealing verification keys"), BarColumn(), MofNCompleteColumn()
        ) as progress:
            task = progress.add_task("reseal", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            apps = await store.reseal_keys(KeyBox(new), progress=advance)
        return apps, await store.reseal_endpoint_secrets(KeyBox(new))
    finally:
        await store.close()


commands = [new_master_key_command, rotate_master_key]
