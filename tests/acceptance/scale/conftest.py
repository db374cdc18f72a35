"""What the scale tests need from the machine: a PostgreSQL they may restart, and root
(or password-less sudo) for network namespaces. Missing, they skip locally and fail
under CI, like the PostgreSQL fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.eventually import eventually_sync


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI needs it")
    pytest.skip(reason)


def _pg_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def privileged() -> list[str]:
    """The prefix that runs a command as root: nothing, or ``sudo -n``."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"]).returncode == 0:
        return ["sudo", "-n"]
    _missing("network namespaces need root or password-less sudo")
    return []


@pytest.fixture
def restart_postgres() -> Iterator[Callable[[], None]]:
    """Restarts the local cluster; whatever happens, it is running again afterwards."""
    versions = (
        sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    )
    if not versions or not shutil.which("pg_ctlcluster"):
        _missing("no local PostgreSQL cluster to restart (pg_ctlcluster)")
    version = versions[-1].parent.name
    command = [*privileged(), "pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]

    def restart() -> None:
        subprocess.run([*command, "restart"], check=True, timeout=120, capture_output=True)

    try:
        yield restart
    finally:
        if not _pg_answers():
            subprocess.run([*command, "start"], timeout=120, capture_output=True)
        eventually_sync(_pg_answers, timeout=60, message="PostgreSQL to answer again")
