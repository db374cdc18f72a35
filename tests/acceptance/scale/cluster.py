"""A sender cluster on PostgreSQL for the scale tests, and a sink that checks what arrives.

* ``Sink``: an aiohttp endpoint in the test's own event loop. It records each arrival in
  order and counts requests in flight, per user and in all, at every moment: the
  one-at-a-time and in-flight-cap guarantees are checked where they matter, at the
  receiving end.
* ``Proc``: one ``hookline serve --no-deliver`` or ``hookline worker`` process, optionally
  inside a network namespace (another "host").
* ``publish``: sends events in batches through the API and, like any sensible client,
  retries a batch that got a 503 or no answer, with the same event ids.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receive_process import HOOKLINE, ROOT

ADMIN = "scale-admin-2c8e4a6f0b9d1e3c7a5f"
ENV = {
    "HOOKLINE_ADMIN_TOKEN": ADMIN,
    "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
    "HOOKLINE_RETRY_SCHEDULE": "0,0.2,0.5,1,1,1,1,1,1,1",
    "HOOKLINE_POLL_INTERVAL": "0.2",
    # A killed worker's lanes go out again after timeout (2 s) + this margin.
    "HOOKLINE_LEASE_MARGIN": "2",
    "HOOKLINE_CONCURRENCY": "256",
}


@dataclass(frozen=True, slots=True)
class Arrival:
    user_id: str
    n: int
    event_id: str
    token: str
    remote: str
    #: When it arrived (time.monotonic()) and from which local port of the sender.
    at: float = 0.0
    port: int = 0


@dataclass
class Sink:
    """Answers 200 after ``hold`` seconds; remembers everything it saw."""

    hosts: Sequence[str] = ("127.0.0.1",)
    hold: float = 0.002
    port: int = field(default_factory=free_port)
    arrivals: list[Arrival] = field(default_factory=list)
    max_per_user: int = 0
    max_in_flight: int = 0
    _per_user: Counter[str] = field(default_factory=Counter)
    _in_flight: int = 0
    _runner: web.AppRunner | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hook"

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for host in self.hosts:
            await web.TCPSite(self._runner, host, self.port, backlog=1024).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        envelope = orjson.loads(await request.read())
        user = envelope["user_id"]
        self._per_user[user] += 1
        self._in_flight += 1
        self.max_per_user = max(self.max_per_user, self._per_user[user])
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        self.arrivals.append(
            Arrival(
                user,
                envelope["data"]["n"],
                envelope["event_id"],
                envelope["token"],
                request.remote or "",
                time.monotonic(),
                _peer_port(request),
            )
        )
        try:
            await asyncio.sleep(self.hold)
        finally:
            self._per_user[user] -= 1
            self._in_flight -= 1
        return web.Response(text="ok")

    def distinct(self) -> int:
        return len({a.event_id for a in self.arrivals})


def _peer_port(request: web.Request) -> int:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if peer else 0


def local_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process ``pid`` holds open (IPv4, loopback
    tests), read from /proc: which sender process a sink's connection comes from."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Proc:
    """One hookline process; its stderr goes to a log file for failure messages.

    ``prefix`` runs it elsewhere, e.g. ``ip netns exec NS`` (with ``sudo -n`` when the
    tests do not run as root: then signals go through sudo too, to the whole group).
    """

    def __init__(self, name: str, args: list[str], log_dir: Path, prefix: Sequence[str] = ()):
        self.name, self.args, self.prefix = name, args, list(prefix)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")} | ENV
        # sudo resets the environment: hand the settings over on the command line.
        settings = ["env", *(f"{k}={v}" for k, v in ENV.items())] if self.prefix else []
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, *settings, HOOKLINE, *self.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        if self.prefix[:1] == ["sudo"]:
            kill = ["sudo", "-n", "kill", f"-{sig.name}", "--", f"-{self.proc.pid}"]
            subprocess.run(kill, capture_output=True)
        else:
            os.killpg(self.proc.pid, sig)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    async def stop(self) -> None:
        """SIGTERM, and SIGKILL if it is not gone in 20 s. Waits in a thread: the sink
        and forwarders in the test's event loop must keep serving a process that is
        finishing its last deliveries."""
        if not self.alive:
            return
        assert self.proc is not None
        self.signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 20)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


def worker(name: str, database: str, log_dir: Path, prefix: Sequence[str] = ()) -> Proc:
    # A worker restarted while PostgreSQL restarts waits for it, as under a supervisor.
    args = ["worker", "--database", database, "--wait-for-database", "60"]
    return Proc(name, args, log_dir, prefix)


async def start_api(database: str, log_dir: Path) -> tuple[Proc, str]:
    """``hookline serve --no-deliver``: the API alone; the workers deliver."""
    port = free_port()
    args = ["serve", "--no-deliver", "--database", database, "--port", str(port)]
    api = Proc("api", args, log_dir).start()
    base = f"http://127.0.0.1:{port}"
    await eventually(lambda: _healthy(base, api), timeout=30, message=lambda: api.log())
    return api, base


async def _healthy(base: str, proc: Proc) -> bool:
    if not proc.alive:
        raise AssertionError(f"{proc.name} exited\n{proc.log()}")
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{base}/healthz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def stop_all(procs: Sequence[Proc]) -> None:
    await asyncio.gather(*(proc.stop() for proc in procs))


async def call(
    session: aiohttp.ClientSession, base: str, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with session.post(f"{base}/api/v1{path}", json=body, headers=headers) as response:
        payload = await response.json()
        if response.status >= 300:
            raise AssertionError(f"{path}: {response.status} {payload}")
        return dict(payload)


async def all_delivered(postgres_url: str, count: int) -> bool:
    """Whether at least ``count`` deliveries exist and every one is recorded as delivered.

    Then no engine sends any of them again: a test that checks for duplicates at the sink
    waits for this, not for a while, before it judges.
    """
    conn = await asyncpg.connect(postgres_url)
    try:
        total, delivered = await conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE status = 'delivered') FROM deliveries"
        )
    finally:
        await conn.close()
    return bool(delivered == total >= count)


async def make_app(base: str, users: int, url: str, *, cap: int) -> str:
    """One app, ``users`` installations, one ordered endpoint capped at ``cap``."""
    async with aiohttp.ClientSession() as session:
        app = await call(session, base, "/apps", {"name": "scale"})
        await asyncio.gather(
            *(
                call(session, base, f"/apps/{app['id']}/installations", {"user_id": f"u{u}"})
                for u in range(users)
            )
        )
        endpoint = await call(
            session,
            base,
            f"/apps/{app['id']}/endpoints",
            {"url": url, "event_types": ["*"], "timeout": 2, "max_in_flight": cap},
        )
    return str(endpoint["id"])


def events(users: int, per_user: int) -> list[dict[str, Any]]:
    """Round-robin over users, each user's events in their order ``n``."""
    return [
        {
            "event_type": "order_completed",
            "user_id": f"u{u}",
            "event_id": f"e{u}-{n}",
            "data": {"id": f"{u}-{n}", "n": n},
        }
        for n in range(per_user)
        for u in range(users)
    ]


async def publish(
    base: str, batch: list[dict[str, Any]], accepted: set[str], answers: Counter[int]
) -> None:
    """Publish one batch until the API takes it; a 503 or no answer is tried again with
    the same event ids, so an event is never lost nor published twice."""
    delay = 0.1
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        while True:
            try:
                async with session.post(
                    f"{base}/api/v1/events/batch",
                    json={"events": batch},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                ) as response:
                    answers[response.status] += 1
                    if response.status == 202:
                        accepted.update(e["event_id"] for e in batch)
                        return
                    assert response.status == 503, await response.text()
            except (aiohttp.ClientError, TimeoutError):
                answers[0] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def publish_all(
    base: str, all_events: list[dict[str, Any]], accepted: set[str], answers: Counter[int]
) -> None:
    for start in range(0, len(all_events), 1000):
        await publish(base, all_events[start : start + 1000], accepted, answers)


@dataclass
class Verdict:
    duplicates: int
    lost: list[str]
    out_of_order: list[str]
    changed_tokens: list[str]


def judge(sink: Sink, accepted: set[str], users: int) -> Verdict:
    """What the sink saw against what was accepted: losses, order, duplicates."""
    tokens: dict[str, set[str]] = defaultdict(set)
    order: dict[str, list[int]] = defaultdict(list)
    for arrival in sink.arrivals:
        tokens[arrival.event_id].add(arrival.token)
        order[arrival.user_id].append(arrival.n)
    seen = set(tokens)
    return Verdict(
        duplicates=len(sink.arrivals) - len(seen),
        lost=sorted(accepted - seen),
        # Per user, never an earlier event after a later one. After a crash the event
        # just sent may come again (the same n twice), never one further back.
        out_of_order=[user for user, ns in order.items() if ns != sorted(ns)],
        changed_tokens=[e for e, t in tokens.items() if len(t) > 1],
    )
