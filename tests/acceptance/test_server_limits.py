"""No client exhausts ``hookline serve`` or ``hookline receive`` (issue 9, findings 1-2).

Each attack runs against the real command over loopback while a monitor probes the
server on fresh connections (``/healthz`` on ``serve``; ``GET /webhooks``, answered 405
without the database, on ``receive``). The tests assert what the server answered, which
connections it closed and how much its peak memory grew (with a wide margin); the probe
latencies are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.conftest import free_port
from tests.support.attacks import (
    Probe,
    closed_by_server,
    cpu_seconds,
    held_connections,
    peak_rss_kib,
    send_and_read,
    status_of,
)
from tests.support.eventually import eventually
from tests.support.hookline_proc import (
    ADMIN_TOKEN,
    ServeProcess,
    limit_open_files,
    open_file_limit,
)
from tests.support.receive_process import HOOKLINE, ReceiveProcess
from tests.support.recorder import Recorder

MIB = 1024 * 1024
#: Short timeouts, so that the timeout tests finish in seconds.
FAST_TIMEOUTS = {
    "HOOKLINE_IDLE_TIMEOUT": "1",
    "HOOKLINE_HEADER_TIMEOUT": "2",
    "HOOKLINE_BODY_TIMEOUT": "2",
}


@dataclass
class Server:
    name: str
    port: int
    pid: int
    probe_path: str


@pytest.fixture(params=["serve", "receive"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    if request.param == "serve":
        async with ServeProcess(tmp_path / "sender.db", env=FAST_TIMEOUTS) as serve:
            assert serve.proc is not None
            yield Server("serve", serve.port, serve.proc.pid, "/healthz")
    else:
        receive = ReceiveProcess(
            f"sqlite:///{tmp_path / 'inbox.db'}",
            free_port(),
            tmp_path / "handled.log",
            env=FAST_TIMEOUTS,
        )
        await asyncio.to_thread(receive.start)
        try:
            yield Server("receive", receive.port, receive.pid, "/webhooks")
        finally:
            await asyncio.to_thread(receive.stop)


def _empty_lists(size: int) -> Iterator[bytes]:
    """``[[],[],…]`` of about ``size`` bytes, in 1 MiB pieces: the costliest JSON to parse
    per byte (one Python list for every three bytes)."""
    piece = b"[]," * (MIB // 3)
    yield b"["
    for _ in range(size // len(piece)):
        yield piece
    yield b"[]]"


def _post(path: str, length: int | None, token: str | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    head += (
        f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    )
    return (head + "\r\n").encode()


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


async def test_no_body_is_read_before_the_caller_is_known(tmp_path: Path) -> None:
    """16 MiB of ``[[],…]`` without a token, six at a time three by three, announced by
    length or sent chunked: refused (401, then 429 for failing too often) before the
    body is read or parsed."""
    async with ServeProcess(tmp_path / "sender.db") as serve:
        assert serve.proc is not None
        # Answered from the headers alone: not one byte of the body was sent.
        answer = await send_and_read(serve.port, _post("/api/v1/events/batch", 16 * MIB))
        assert status_of(answer) == 401, answer[:200]

        body = b"".join(_empty_lists(16 * MIB - 8))
        baseline = await Probe(serve.port, "/healthz").collect(100)
        before, cpu = peak_rss_kib(serve.proc.pid), cpu_seconds(serve.proc.pid)

        async def one(chunked: bool) -> int | None:
            if chunked:
                head = _post("/api/v1/events/batch", None)
                return status_of(await send_and_read(serve.port, head, _chunked(iter([body]))))
            head = _post("/api/v1/events/batch", len(body))
            return status_of(await send_and_read(serve.port, head, [body]))

        async def six_three_at_a_time() -> list[int | None]:
            first = await asyncio.gather(one(False), one(False), one(True))
            return [*first, *await asyncio.gather(one(False), one(True), one(True))]

        probe = Probe(serve.port, "/healthz")
        rounds = await probe.during(six_three_at_a_time, probes=100, rounds=40)
        grown = (peak_rss_kib(serve.proc.pid) - before) / 1024
        cpu = cpu_seconds(serve.proc.pid) - cpu
        print(
            f"\nunauthenticated 16 MiB bodies ({6 * len(rounds)} sent, 3 at a time):"
            f" /healthz {probe.summary()} (before: {baseline.summary()});"
            f" peak RSS +{grown:.0f} MiB; server CPU {cpu:.2f} s"
        )
        # 401, or 429 once the address has failed too often: refused from the headers.
        assert {status for statuses in rounds for status in statuses} <= {401, 429}, rounds
        assert not probe.failures, probe.failures
        assert grown < 50, f"peak RSS grew {grown:.0f} MiB"


async def test_an_early_answer_lets_the_body_finish_then_the_connection_idles(
    tmp_path: Path,
) -> None:
    """A 401 sent before the body arrived: the rest of the body, sent slower than the
    idle timeout, is still taken (the body deadline applies, not the idle timer); once it
    has ended the connection is idle and is closed at the idle timeout."""
    env = {"HOOKLINE_IDLE_TIMEOUT": "1", "HOOKLINE_BODY_TIMEOUT": "120"}
    async with ServeProcess(tmp_path / "sender.db", env=env) as serve:
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        try:
            writer.write(_post("/api/v1/apps", 12 * 1000))
            assert status_of(await reader.read(65536)) == 401
            for _ in range(12):  # 3 s or more of body, three times the idle timeout
                writer.write(b"x" * 1000)
                assert not await closed_by_server(reader, 0.25), "closed while the body came"
            started = time.monotonic()
            assert await closed_by_server(reader, 20), "an idle connection stayed open"
            print(f"\nclosed {time.monotonic() - started:.1f} s after the body ended")
        finally:
            writer.close()


async def test_each_route_has_its_own_body_limit(tmp_path: Path) -> None:
    """1 MiB by default, refused from the Content-Length before reading; only the batch
    route takes more."""
    async with ServeProcess(tmp_path / "sender.db") as serve, serve.api() as api:
        over = await send_and_read(serve.port, _post("/api/v1/events", 2 * MIB, ADMIN_TOKEN))
        assert status_of(over) == 413, over[:200]
        app = await api.create_app("shop")
        too_big = orjson.dumps({"name": "x" * (2 * MIB)})
        reply = await api.call("PATCH", f"/api/v1/apps/{app['id']}", data=too_big)
        assert (reply.status, reply.error_code) == (413, "body_too_large")
        events = [
            {"event_type": "order_completed", "user_id": "u", "data": {"blob": "x" * 2000}}
            for _ in range(1000)
        ]
        batch = orjson.dumps({"events": events})
        assert len(batch) > 1 * MIB
        reply = await api.call("POST", "/api/v1/events/batch", data=batch)
        assert reply.status == 202, reply


async def test_huge_and_numerous_headers_are_refused(server: Server) -> None:
    """34 MB of headers, three clients at once, in many fields or in one: 431, and the
    server's peak memory barely moves. 101 small fields: 431 too."""
    request = f"GET {server.probe_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()

    def many_fields(name: bytes) -> Iterator[bytes]:
        return (b"X-%s-%d: %s\r\n" % (name, i, b"a" * 8000) for i in range(4250))

    def one_field() -> Iterator[bytes]:
        return iter([b"X-Huge: ", *(b"a" * MIB for _ in range(34))])

    async def three_at_once() -> list[int | None]:
        answers = await asyncio.gather(
            send_and_read(server.port, request, many_fields(b"Filler")),
            send_and_read(server.port, request, one_field()),
            send_and_read(server.port, request, many_fields(b"Again")),
        )
        return [status_of(answer) for answer in answers]

    baseline = await Probe(server.port, server.probe_path).collect(100)
    before = peak_rss_kib(server.pid)
    probe = Probe(server.port, server.probe_path)
    rounds = await probe.during(three_at_once, probes=100, rounds=400)
    grown = (peak_rss_kib(server.pid) - before) / 1024
    print(
        f"\n{server.name}, 34 MB of headers ({3 * len(rounds)} sent, 3 at a time):"
        f" probe {probe.summary()} (before: {baseline.summary()}); peak RSS +{grown:.0f} MiB"
    )
    assert rounds == [[431] * 3] * len(rounds)
    assert grown < 50, f"peak RSS grew {grown:.0f} MiB"
    assert not probe.failures, probe.failures

    fields = b"".join(b"X-Field-%d: y\r\n" % i for i in range(101))
    answer = await send_and_read(server.port, request + fields + b"\r\n")
    assert status_of(answer) == 431, answer[:200]


async def test_idle_and_slow_connections_are_closed(server: Server) -> None:
    """Silent, slowloris (a partial request line, a byte at a time), slow-body and
    blank-line connections are closed after their timeouts (1 s idle, 2 s headers, 2 s
    body)."""

    @contextlib.asynccontextmanager
    async def connection() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def silent() -> float:
        started = time.monotonic()
        async with connection() as (reader, _):
            assert await closed_by_server(reader, 20), "a silent connection stayed open"
        return time.monotonic() - started

    async def slowloris() -> float:
        started = time.monotonic()
        answer = b""
        async with connection() as (reader, writer):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                try:
                    async with asyncio.timeout(0.5):
                        answer += await reader.read(65536)
                except TimeoutError:
                    continue
                break
        assert status_of(answer) == 408, f"a byte every 0.5 s for 70 s got {answer[:80]!r}"
        return time.monotonic() - started

    async def slow_body() -> float:
        started = time.monotonic()
        path = "/api/v1/apps" if server.name == "serve" else "/webhooks"
        async with connection() as (reader, writer):
            writer.write(_post(path, 1000, ADMIN_TOKEN) + b'{"name": ')
            assert await closed_by_server(reader, 20), "a request body that stalled stayed open"
        return time.monotonic() - started

    async def blank_lines() -> float:
        # The parser skips blank lines before a request: they must not keep a
        # connection open past the idle timeout.
        started = time.monotonic()
        async with connection() as (reader, writer):
            for _ in range(80):
                writer.write(b"\r\n")
                if await closed_by_server(reader, 0.25):
                    break
            else:
                raise AssertionError("a connection sending only blank lines stayed open")
        return time.monotonic() - started

    async def kept_alive() -> float:
        async with connection() as (reader, writer):
            writer.write(f"GET {server.probe_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert status_of(await reader.read(65536)) in (200, 405)
            started = time.monotonic()
            assert await closed_by_server(reader, 20), "an idle kept-alive connection stayed open"
        return time.monotonic() - started

    times = await asyncio.gather(silent(), slowloris(), slow_body(), kept_alive(), blank_lines())
    print(
        f"\n{server.name} closed: silent after {times[0]:.1f} s, slowloris {times[1]:.1f} s,"
        f" stalled body {times[2]:.1f} s, idle keep-alive {times[3]:.1f} s,"
        f" blank lines {times[4]:.1f} s"
    )


async def test_idle_connections_never_take_the_last_file_descriptors(tmp_path: Path) -> None:
    """Under a 256 open-file limit, 300 connections held open (half silent, half
    slowloris, each reopened when closed): ``/healthz`` answers, and deliveries to a
    healthy endpoint all land, never failing with "Too many open files"."""
    slow = {"HOOKLINE_IDLE_TIMEOUT": "60", "HOOKLINE_HEADER_TIMEOUT": "60"}
    async with (
        Recorder() as recorder,
        ServeProcess(tmp_path / "sender.db", env=slow, open_files=256) as serve,
        serve.api() as api,
    ):
        app = await api.create_app("shop")
        await api.install(app["id"], "store-1")
        await api.create_endpoint(app["id"], recorder.url("/hook"), ["*"])
        async with (
            held_connections(serve.port, 150) as silent,
            held_connections(serve.port, 150, trickle=b"GET /healthz HTTP/1.1\r\n") as slow_ones,
        ):
            await eventually(lambda: silent["opened"] + slow_ones["opened"] >= 300, timeout=30)
            async with Probe(serve.port, "/healthz") as probe:
                for seq in range(20):
                    await api.publish("order_completed", "store-1", {"seq": seq})
                rows = await api.settled(app["id"], 20, timeout=60)
                # A few more probes while the connections are held.
                probed = probe.count
                await eventually(lambda: probe.count >= probed + 50, message="50 more probes")
        print(
            f"\n300 held connections, open-file limit 256: /healthz {probe.summary()};"
            f" opened {silent['opened'] + slow_ones['opened']},"
            f" closed by the server {silent['closed'] + slow_ones['closed']}"
        )
        assert not probe.failures, probe.failures[:5]
        # Each landed at the first attempt: no "Too many open files" retries.
        assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)] * 20
        assert "Too many open files" not in serve.log()


async def test_at_the_cap_the_longest_waiting_connection_makes_room(tmp_path: Path) -> None:
    """With room for 4 connections: one busy with a request and three silent ones; each
    newcomer closes the silent connection that has waited longest, never the busy one."""
    env = {"HOOKLINE_MAX_CONNECTIONS": "4", "HOOKLINE_IDLE_TIMEOUT": "60"}
    async with ServeProcess(tmp_path / "sender.db", env=env) as serve:
        body = b'{"name": "busy"}'
        busy_reader, busy = await asyncio.open_connection("127.0.0.1", serve.port)
        head = _post("/api/v1/apps", len(body), ADMIN_TOKEN)
        busy.write(head[:-2] + b"Expect: 100-continue\r\n\r\n")
        # The route asks for the body: the request is in progress.
        assert (await busy_reader.readline()).startswith(b"HTTP/1.1 100")
        await busy_reader.readline()

        silent = []
        for _ in range(5):
            silent.append(await asyncio.open_connection("127.0.0.1", serve.port))
        try:
            assert await closed_by_server(silent[0][0], 10), "the longest waiting stayed"
            assert await closed_by_server(silent[1][0], 10), "the second longest stayed"
            for reader, _ in silent[2:]:
                assert not await closed_by_server(reader, 0.5), "a newer connection was closed"
            busy.write(body)
            assert status_of(await busy_reader.read(65536)) == 201
        finally:
            busy.close()
            for _, writer in silent:
                writer.close()


async def test_serve_and_worker_raise_the_open_file_limit_to_the_hard_one(tmp_path: Path) -> None:
    async with ServeProcess(tmp_path / "sender.db", open_files=(256, 4096)) as serve:
        assert serve.proc is not None
        assert open_file_limit(serve.proc.pid) == (4096, 4096)
        worker = subprocess.Popen(
            [HOOKLINE, "worker", "--database", serve.database_url],
            preexec_fn=limit_open_files((256, 4096)),
            stderr=subprocess.DEVNULL,
        )
        try:
            await eventually(
                lambda: open_file_limit(worker.pid) == (4096, 4096) or worker.poll() is not None,
                timeout=30,
            )
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        finally:
            worker.terminate()
            worker.wait(timeout=30)
