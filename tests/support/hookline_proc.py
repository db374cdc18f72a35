"""Run the real ``hookline serve`` in a subprocess and talk to its REST API.

    async with ServeProcess(tmp_path / "sender.db") as serve, serve.api() as api:
        app = await api.create_app("shop")
        ...

The process gets a free port, its own SQLite file, the admin token below and a fast
retry schedule; its stderr goes to a file that ``log()`` reads back for failure messages.
Waiting is always async, so a receiver running in the test's event loop keeps answering
while the test waits for the sender.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receive_process import HOOKLINE, ROOT

ADMIN_TOKEN = "test-admin-7f3c9a1e5b2d4c8f6a0e9b3d"

#: What every test sender runs with unless a test says otherwise.
FAST_ENV: dict[str, str] = {
    "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
    "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
    "HOOKLINE_RETRY_SCHEDULE": "0,0.2,0.5",
    "HOOKLINE_POLL_INTERVAL": "0.05",
    "HOOKLINE_LEASE_MARGIN": "1",
}
START_TIMEOUT = 30.0


class ServeProcess:
    """``hookline serve`` on a free port over one SQLite file; restartable on the same file."""

    def __init__(
        self,
        db_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        open_files: int | tuple[int, int] | None = None,
    ) -> None:
        self.db_path = db_path
        self.env = {**FAST_ENV, **(env or {})}
        #: RLIMIT_NOFILE of the process (one number: soft and hard), where a test sets it.
        self.open_files = open_files
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = db_path.with_suffix(".log")
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    async def start(self) -> Self:
        self.port = free_port()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [HOOKLINE, "serve", "--database", self.database_url, "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=limit_open_files(self.open_files),
            )
        await eventually(
            self._healthy, timeout=START_TIMEOUT, message=lambda: f"/healthz\n{self.log()}"
        )
        return self

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"hookline serve exited with {self.proc.returncode}\n{self.log()}")
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.base_url}/healthz", timeout=aiohttp.ClientTimeout(2)) as r,
            ):
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def children(self) -> list[int]:
        """The pids of the process's children (its delivery processes)."""
        assert self.proc is not None
        return process_children(self.proc.pid)

    async def interrupt(self, sig: int = signal.SIGINT, timeout: float = 40.0) -> int:
        """Send ``sig`` and return the exit code once the process is gone."""
        assert self.proc is not None
        proc = self.proc
        proc.send_signal(sig)
        await eventually(
            lambda: proc.poll() is not None,
            timeout=timeout,
            message=lambda: f"hookline serve to exit after signal {sig}\n{self.log()}",
        )
        return proc.returncode

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            await self.interrupt(signal.SIGTERM, timeout=20)
        except AssertionError:
            self.kill9()

    def api(self, token: str = ADMIN_TOKEN) -> Api:
        return Api(self.base_url, token)

    def counts(self) -> dict[str, int]:
        """Rows per table, read straight from the SQLite file."""
        return table_counts(self.db_path)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def limit_open_files(limit: int | tuple[int, int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets the child's RLIMIT_NOFILE: ``(soft, hard)``, or one
    number for both."""
    if limit is None:
        return None
    soft, hard = (limit, limit) if isinstance(limit, int) else limit

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def process_children(pid: int) -> list[int]:
    """The pids of a running process's children; none once it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def open_file_limit(pid: int) -> tuple[int, int]:
    """The soft and hard RLIMIT_NOFILE of a running process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for process {pid}")


def table_counts(db_path: Path) -> dict[str, int]:
    tables = ("apps", "installations", "endpoints", "events", "deliveries", "attempts")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None


class Api:
    """A small client for ``/api/v1``; every call may override the bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # An idle connection is given up well before the server's idle timeout (5 s)
        # closes it: a request sent on it just as the server closes it would fail.
        self._session = aiohttp.ClientSession(
            self.base_url, connector=aiohttp.TCPConnector(keepalive_timeout=2)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        assert self._session is not None, "use `async with serve.api() as api`"
        sent = dict(headers or {})
        if token != "":
            sent.setdefault("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if isinstance(data, bytes):
            data = io.BytesIO(data)  # type: ignore[assignment]
        async with self._session.request(
            method, path, json=json, data=data, headers=sent
        ) as response:
            text = await response.text()
            try:
                body: Any = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(response.status, body)

    async def expect(self, status: int, method: str, path: str, **kwargs: Any) -> Any:
        reply = await self.call(method, path, **kwargs)
        assert reply.status == status, (method, path, reply)
        return reply.body

    async def create_app(self, name: str) -> dict[str, Any]:
        app: dict[str, Any] = await self.expect(201, "POST", "/api/v1/apps", json={"name": name})
        return app

    async def install(self, app_id: str, user_id: str) -> None:
        await self.expect(
            201, "POST", f"/api/v1/apps/{app_id}/installations", json={"user_id": user_id}
        )

    async def create_endpoint(
        self, app_id: str, url: str, event_types: list[str] | None = None, **options: Any
    ) -> dict[str, Any]:
        body = {"url": url, "event_types": event_types or ["*"], **options}
        endpoint: dict[str, Any] = await self.expect(
            201, "POST", f"/api/v1/apps/{app_id}/endpoints", json=body
        )
        return endpoint

    async def endpoints(self, app_id: str) -> list[dict[str, Any]]:
        """The app's first page of endpoints (up to 100)."""
        page: dict[str, Any] = await self.expect(200, "GET", f"/api/v1/apps/{app_id}/endpoints")
        rows: list[dict[str, Any]] = page["data"]
        return rows

    async def publish(
        self,
        event_type: str,
        user_id: str,
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"event_type": event_type, "user_id": user_id, "data": data or {}}
        if event_id is not None:
            body["event_id"] = event_id
        published: dict[str, Any] = await self.expect(202, "POST", "/api/v1/events", json=body)
        return published

    async def deliveries(self, app_id: str, **filters: str) -> list[dict[str, Any]]:
        """Every delivery of the app (all pages), oldest first."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": "100", **filters, **({"cursor": cursor} if cursor else {})}
            page = await self.expect(
                200, "GET", f"/api/v1/apps/{app_id}/deliveries?" + _query(query)
            )
            rows.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return sorted(rows, key=lambda row: row["id"])

    async def settled(
        self, app_id: str, expected: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until the app has ``expected`` deliveries, none of them pending."""
        rows: list[dict[str, Any]] = []

        async def done() -> bool:
            nonlocal rows
            rows = await self.deliveries(app_id)
            assert len(rows) <= expected, f"{len(rows)} deliveries, expected {expected}"
            return len(rows) == expected and all(r["status"] != "pending" for r in rows)

        await eventually(
            done,
            timeout=timeout,
            interval=0.1,
            message=lambda: f"{expected} settled deliveries; have {_summary(rows)}",
        )
        return rows


def _query(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _summary(rows: list[dict[str, Any]]) -> str:
    from collections import Counter

    return str(dict(Counter(r["status"] for r in rows)))
