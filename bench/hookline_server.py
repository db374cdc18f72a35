"""Start ``hookline serve`` (or workers) as child processes and talk to its API."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from bench._common import REPO, python_env, stop_process

ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(8)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HooklineServer:
    """``hookline serve`` on a database of its own, with loopback targets allowed."""

    def __init__(
        self, database: str | None = None, *, args: tuple[str, ...] = (), **env: str
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hookline-bench-")
        self.database = database or f"sqlite:///{self._tmp.name}/hookline.db"
        self.port = _free_port()
        self.args = args
        self.env = {
            **python_env(),
            "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
            **env,
        }
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database.removeprefix("sqlite:///"))

    def start(self) -> Self:
        hookline = str(Path(sys.executable).with_name("hookline"))
        self._proc = subprocess.Popen(
            [hookline, "serve", "--database", self.database, "--port", str(self.port), *self.args],
            env=self.env,
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.call("GET", "/healthz")
                return self
            except (urllib.error.URLError, ConnectionError):
                if self._proc.poll() is not None:
                    raise RuntimeError("hookline serve exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("hookline serve did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, timeout=30)
            self._proc = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=data,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return orjson.loads(response.read())

    def make_app(self, name: str, url: str, users: list[str], **endpoint: Any) -> tuple[str, str]:
        """An app, its installations and one endpoint to ``url``; returns (app, endpoint)."""
        app = self.call("POST", "/api/v1/apps", {"name": name})
        for user in users:
            self.call("POST", f"/api/v1/apps/{app['id']}/installations", {"user_id": user})
        ep = self.call(
            "POST",
            f"/api/v1/apps/{app['id']}/endpoints",
            {"url": url, "event_types": ["*"], **endpoint},
        )
        return app["id"], ep["id"]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def seed_backlog(db_path: Path, app_id: str, endpoint_id: str, count: int, users: int) -> None:
    """Put ``count`` deliveries for ``endpoint_id`` in the store, all waiting on a retry.

    Written straight into SQLite (with ``hookline serve`` stopped): publishing a million
    events through the API would take the benchmark minutes of set-up for the same
    state, deliveries whose lanes are due an hour from now.
    """
    later = time.time() + 3600
    db = sqlite3.connect(db_path)
    with db:
        db.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO events (id, event_type, user_id, data, created_at)
            SELECT 'backlog-' || i, 'order_completed', 'backlog-user-' || (i % ?),
                   '{"id":"backlog"}', ? FROM n
            """,
            (count, users, time.time()),
        )
        db.execute(
            """
            INSERT INTO deliveries (event_seq, endpoint_id, app_id, user_id, event_type, lane,
                                    token, attempts, next_attempt_at, created_at, updated_at)
            SELECT seq, ?, ?, user_id, event_type, user_id, hex(randomblob(24)), 1, ?,
                   created_at, created_at
            FROM events WHERE id LIKE 'backlog-%'
            """,
            (endpoint_id, app_id, later),
        )
        db.execute(
            """
            INSERT INTO lanes (endpoint_id, lane, pending, next_attempt_at)
            SELECT ?, user_id, COUNT(*), ? FROM events WHERE id LIKE 'backlog-%' GROUP BY user_id
            """,
            (endpoint_id, later),
        )
    db.close()


__all__ = ["ADMIN_TOKEN", "HooklineServer", "seed_backlog"]
