"""The mistakes a newcomer makes, through the real ``hookline`` command.

Each mistake must end in one line on stderr that says what is wrong, a non-zero exit
code, no banner (nothing pretends to have started), and nothing created on disk: no
database file, no directory. Every command runs in a fresh working directory, so a
default path (``./hookline.db``, ``./hookline-inbox.db``) would show up there too.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.receive_process import HOOKLINE

#: What ``serve`` and ``receive`` print once they accept connections, and nothing else.
BANNER = re.compile(r"on http://|POST http://")


def clean_env() -> dict[str, str]:
    """A newcomer's environment: no HOOKLINE_* settings; the test app importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["COLUMNS"] = "200"  # help text on one line per option
    return env


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HOOKLINE, *args], cwd=cwd, env=clean_env(), stderr=subprocess.PIPE, text=True
    )


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()
    return code


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def assert_refused(cwd: Path, *args: str, says: str) -> None:
    """``hookline args`` fails in one line containing ``says``, and leaves ``cwd`` as it was."""
    before = tree(cwd)
    result = run(cwd, *args)
    lines = result.stderr.splitlines()
    assert result.returncode != 0, result
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and says in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not BANNER.search(result.stderr + result.stdout), result
    assert tree(cwd) == before, f"{args} created {tree(cwd) - before}"
    print(f"{' '.join(args[:2])}: {lines[0]}")


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("not a directory\n")
    return work


def unreachable_postgres() -> str:
    # A loopback port nothing listens on: refused at once.
    return f"postgresql://postgres@127.0.0.1:{free_port()}/hookline"


BAD_DATABASES = {
    "bad scheme": ("nonsense://x", "unsupported"),
    "unreachable postgres": (None, "unreachable"),
    "parent is a file": ("sqlite:///a-file/x.db", "a-file is not a directory"),
    "missing directory": ("sqlite:///no-such-dir/x.db", "no-such-dir does not exist"),
}
STARTING = {
    "serve": ["serve", "--port", "0"],
    "migrate": ["migrate"],
    "worker": ["worker"],
    "receive": ["receive", "tests.support.receiver_app:receiver", "--port", "0"],
}


@pytest.mark.parametrize("mistake", list(BAD_DATABASES))
@pytest.mark.parametrize("command", list(STARTING))
def test_a_bad_database_is_one_line_before_any_banner(
    cwd: Path, command: str, mistake: str
) -> None:
    url, says = BAD_DATABASES[mistake]
    url = url or unreachable_postgres()
    assert_refused(cwd, *STARTING[command], "--database", url, says=says)


READING = [
    ["apps", "list"],
    ["apps", "show", "app_x"],
    ["apps", "create", "Acme"],
    ["apps", "install", "app_x", "store-1"],
    ["endpoints", "list", "--app", "app_x"],
    ["events", "publish", "--type", "order_completed", "--user", "store-1"],
    ["deliveries", "list", "--app", "app_x"],
    ["deliveries", "show", "1"],
    ["deliveries", "recover"],
    ["rotate-master-key", "--decrypt"],
    ["worker"],
]


@pytest.mark.parametrize("args", READING, ids=" ".join)
def test_commands_that_do_not_set_up_a_database_create_none(cwd: Path, args: list[str]) -> None:
    # The default database, ./hookline.db, does not exist here.
    assert_refused(cwd, *args, says="no SQLite database at ./hookline.db")
    assert_refused(
        cwd, *args, "--database", "sqlite:///other.db", says="no SQLite database at other.db"
    )


@pytest.mark.parametrize("args", [["list"], ["show", "1"], ["replay", "--all"]], ids=" ".join)
def test_dead_letters_take_database_after_the_subcommand_and_create_no_inbox(
    cwd: Path, args: list[str]
) -> None:
    assert_refused(cwd, "dead-letters", *args, says="no SQLite database at ./hookline-inbox.db")
    assert_refused(
        cwd,
        "dead-letters",
        *args,
        "--database",
        "sqlite:///no-such-dir/inbox.db",
        says="no-such-dir does not exist",
    )


def test_dead_letters_list_reads_an_inbox_named_after_the_subcommand(cwd: Path) -> None:
    receive = ["receive", "tests.support.receiver_app:receiver"]
    assert_refused(
        cwd, *receive, "--database", "sqlite:///a-file/in.db", says="a-file is not a directory"
    )
    inbox = "sqlite:///inbox.db"
    _run_until_started(cwd, *receive, "--database", inbox, "--port", "0")
    listed = run(cwd, "dead-letters", "list", "--database", inbox)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "No dead letters."


def _run_until_started(cwd: Path, *args: str) -> tuple[str, str]:
    """Start a server command, wait for its banner, stop it: (banner line, address)."""
    proc = start(cwd, *args)
    assert proc.stderr is not None
    try:
        lines = []
        for line in proc.stderr:  # blocks until the banner (or the end)
            lines.append(line)
            found = re.search(r"http://[^\s/]+", line)
            if found and BANNER.search(line):
                return line, found[0]
        raise AssertionError(f"no banner; exited {proc.wait()}:\n{''.join(lines)}")
    finally:
        stop(proc)


def test_serve_announces_only_once_it_answers(cwd: Path) -> None:
    """The banner comes after the database is set up and the socket listens: the address
    it names answers at once, with the port actually bound."""
    import urllib.request

    proc = start(cwd, "serve", "--port", "0")
    assert proc.stderr is not None
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
        assert lines[0].startswith("No HOOKLINE_ADMIN_TOKEN set"), lines
        found = re.search(
            r"on (http://127\.0\.0\.1:(\d+)) with sqlite:///\./hookline\.db", lines[1]
        )
        assert found and found[2] != "0", lines
        with urllib.request.urlopen(f"{found[1]}/healthz", timeout=10) as answer:
            assert answer.status == 200
        assert (cwd / "hookline.db").exists()  # serve may create the file
    finally:
        stop(proc)


def test_a_port_in_use_is_one_line(cwd: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert_refused(
            cwd,
            "serve",
            "--database",
            "sqlite:///a-file/x.db",  # the database is checked first
            "--port",
            port,
            says="a-file is not a directory",
        )
        migrated = run(cwd, "migrate", "--database", "sqlite:///s.db")
        assert migrated.returncode == 0, migrated.stderr
        assert_refused(
            cwd, "serve", "--database", "sqlite:///s.db", "--port", port, says="cannot listen on"
        )


def test_a_worker_on_sqlite_says_it_is_not_a_scale_out(cwd: Path) -> None:
    migrated = run(cwd, "migrate", "--database", "sqlite:///s.db")
    assert migrated.returncode == 0, migrated.stderr
    proc = start(cwd, "worker", "--database", "sqlite:///s.db")
    assert proc.stderr is not None
    try:
        warning = proc.stderr.readline()
        started = proc.stderr.readline()  # after it: a signal stops it cleanly
        assert "delivering from sqlite:///s.db" in started, started
    finally:
        code = stop(proc)
    assert warning.startswith("warning: a worker on SQLite") and "use PostgreSQL" in warning
    assert code == 0


def test_database_help_shows_its_default_and_variable(cwd: Path) -> None:
    def help_of(*command: str) -> str:
        # Without white space: click wraps help text, even inside a path.
        return "".join(run(cwd, *command, "--help").stdout.split())

    for command in (["serve"], ["worker"], ["migrate"], ["apps", "list"], ["rotate-master-key"]):
        text = help_of(*command)
        assert "HOOKLINE_DATABASE_URL" in text and "default:sqlite:///./hookline.db" in text
    text = help_of("dead-letters", "list")
    assert "HOOKLINE_INBOX_URL" in text and "default:sqlite:///./hookline-inbox.db" in text


NOT_SET_UP = {
    "apps list": (["apps", "list"], "holds no hookline database"),
    "worker": (["worker"], "holds no hookline database"),
    "dead-letters list": (["dead-letters", "list"], "holds no hookline inbox"),
}


@pytest.mark.parametrize("command", list(NOT_SET_UP))
def test_a_file_that_is_no_hookline_database_is_refused_and_kept(cwd: Path, command: str) -> None:
    args, says = NOT_SET_UP[command]
    (cwd / "other.db").write_text("some other program's file\n")
    assert_refused(cwd, *args, "--database", "sqlite:///other.db", says="file is not a database")
    assert (cwd / "other.db").read_text() == "some other program's file\n"
    sqlite3.connect(cwd / "empty.db").close()  # a SQLite database without hookline's tables
    assert_refused(cwd, *args, "--database", "sqlite:///empty.db", says=says)
    with sqlite3.connect(cwd / "empty.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.postgres
@pytest.mark.parametrize("command", list(NOT_SET_UP))
async def test_a_postgres_database_without_hookline_is_refused_and_left_empty(
    cwd: Path, postgres_url: str, command: str
) -> None:
    import asyncpg

    args, says = NOT_SET_UP[command]
    await asyncio.to_thread(assert_refused, cwd, *args, "--database", postgres_url, says=says)
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    assert tables == []


@pytest.mark.postgres
async def test_a_worker_told_to_wait_starts_once_the_database_answers(
    cwd: Path, postgres_url: str
) -> None:
    """``--wait-for-database`` keeps the start-late behaviour for supervisors; without it
    (above) an unreachable database is one line at once."""
    from tests.support.tcp_forwarder import Forwarder

    migrated = await asyncio.to_thread(run, cwd, "migrate", "--database", postgres_url)
    assert migrated.returncode == 0, migrated.stderr
    forwarder = Forwarder(("127.0.0.1", 5432))  # not started: the database is "down"
    through = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    proc = start(cwd, "worker", "--database", through, "--wait-for-database", "120")
    assert proc.stderr is not None
    try:
        waiting = await asyncio.to_thread(proc.stderr.readline)
        assert "waiting for the database" in waiting, waiting
        await forwarder.start()
        while "delivering from" not in (line := await asyncio.to_thread(proc.stderr.readline)):
            assert line, "the worker ended without starting"
            assert "waiting for the database" in line, line
    finally:
        code = await asyncio.to_thread(stop, proc)
        await forwarder.cut()
    assert code == 0
