"""A local webhook receiver that only counts, fast enough never to be the bottleneck.

Run it as its own process so it gets its own core::

    python -m bench.peers.sink --port 0            # prints "listening <port>"

Every request to a path not starting with ``/_`` is one arrival: answered ``200 ok`` at
once, counted, and its arrival time kept under the value of the ``webhook-id`` header
(hookline and the peers put the event id there), for latency. Control paths:

- ``GET /_count`` -> ``{"count": n}``
- ``GET /_arrivals`` -> ``{"<webhook-id>": <arrival unix time>, ...}``
- ``POST /_reset`` -> forget everything, between runs on the same sink.

Two implementations, measured with ``bench.peers_only --sink-impl``: ``raw``, an asyncio
Protocol speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies), and
``aiohttp``, an aiohttp.web app; both run on uvloop when it is installed. ``raw`` is the
default because it is the faster by far (see bench/README.md).

From Python, ``SinkProcess`` starts it and reads the count and arrivals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

from bench._common import (
    RunResult,
    latencies,
    now,
    python_cmd,
    start_process,
    stop_process,
    summarize,
)

DEFAULT_KEY_HEADER = "webhook-id"


@dataclass(slots=True)
class SinkState:
    key_header: bytes | None  # lower-case header name; None records no arrival times
    count: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)

    def arrive(self, key: str | None) -> None:
        self.count += 1
        if key is not None:
            self.arrivals[key] = now()

    def reset(self) -> None:
        self.count = 0
        self.arrivals = {}

    def control(self, method: str, path: str) -> tuple[int, bytes]:
        if method == "GET" and path == "/_count":
            return 200, json.dumps({"count": self.count}).encode()
        if method == "GET" and path == "/_arrivals":
            return 200, json.dumps(self.arrivals).encode()
        if method == "POST" and path == "/_reset":
            self.reset()
            return 200, b'{"count": 0}'
        return 404, b'{"error": "unknown control path"}'


# -- raw asyncio Protocol ---------------------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_REASONS = {200: b"OK", 404: b"Not Found", 411: b"Length Required"}


def _response(status: int, body: bytes) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % (status, _REASONS.get(status, b"Error"), len(body)) + body


def _header(head: bytes, lower: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given lower-case), found in the lower-cased head."""
    start = lower.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class _RawProtocol(asyncio.Protocol):
    """HTTP/1.1 without a parser library: find the head, read Content-Length bytes, answer.

    Chunked bodies are refused (411): aiohttp and requests send a length for byte bodies.
    """

    def __init__(self, state: SinkState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._handle_one():
            pass

    def _handle_one(self) -> bool:
        """Answer the first complete request in the buffer; False when there is none."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end])
        lower = head.lower()
        if b"\r\ntransfer-encoding:" in lower:
            return self._close_with(_response(411, b'{"error": "send a Content-Length"}'))
        length = int(_header(head, lower, b"content-length") or 0)
        total = end + 4 + length
        if len(self.buffer) < total:
            return False
        del self.buffer[:total]
        assert self.transport is not None
        self.transport.write(self._answer(head, lower))
        if b"\r\nconnection: close" in lower:
            return self._close_with(b"")
        return True

    def _answer(self, head: bytes, lower: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0]
        if path.startswith(b"/_"):
            return _response(*self.state.control(method.decode(), path.decode()))
        key_header = self.state.key_header
        key = _header(head, lower, key_header) if key_header else None
        self.state.arrive(key.decode() if key is not None else None)
        return _OK

    def _close_with(self, last: bytes) -> bool:
        assert self.transport is not None
        if last:
            self.transport.write(last)
        self.transport.close()
        self.transport = None
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve_raw(state: SinkState, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _RawProtocol(state), host, port, backlog=1024)
    return int(server.sockets[0].getsockname()[1])


# -- aiohttp.web ------------------------------------------------------------------------


async def _serve_aiohttp(state: SinkState, host: str, port: int) -> int:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith("/_"):
            status, body = state.control(request.method, request.path)
            return web.Response(status=status, body=body, content_type="application/json")
        await request.read()
        key = request.headers.get(state.key_header.decode()) if state.key_header else None
        state.arrive(key)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return int(runner.addresses[0][1])


IMPLEMENTATIONS = {"raw": _serve_raw, "aiohttp": _serve_aiohttp}


async def _main(args: argparse.Namespace) -> None:
    key_header = None if args.no_record else args.key_header.lower().encode()
    state = SinkState(key_header=key_header)
    port = await IMPLEMENTATIONS[args.impl](state, args.host, args.port)
    print(f"listening {port}", flush=True)
    await asyncio.Event().wait()  # until SIGTERM ends the process


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--impl", choices=sorted(IMPLEMENTATIONS), default="raw")
    parser.add_argument("--key-header", default=DEFAULT_KEY_HEADER)
    parser.add_argument("--no-record", action="store_true", help="count only, keep no times")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    try:
        import uvloop

        uvloop.run(_main(args))
    except ImportError:
        asyncio.run(_main(args))


# -- client side ------------------------------------------------------------------------


class SinkProcess:
    """The sink as a child process, and a client for its control paths.

    with SinkProcess() as sink:
        ... send to sink.url ...
        sink.wait_for(n)
    """

    def __init__(
        self, *, impl: str = "raw", key_header: str = DEFAULT_KEY_HEADER, record: bool = True
    ) -> None:
        self.args = ["--impl", impl, "--key-header", key_header]
        if not record:
            self.args.append("--no-record")
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"{self.base}/webhooks"

    def start(self) -> Self:
        self._proc, self.port = start_process(python_cmd("bench.peers.sink", *self.args))
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def _call(self, method: str, path: str) -> Any:
        data = b"" if method == "POST" else None
        request = urllib.request.Request(self.base + path, method=method, data=data)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def count(self) -> int:
        return int(self._call("GET", "/_count")["count"])

    def arrivals(self) -> dict[str, float]:
        return dict(self._call("GET", "/_arrivals"))

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def wait_for(self, n: int, *, timeout: float = 120.0, poll: float = 0.01) -> float:
        """Block until ``n`` arrivals; return the time (``bench._common.now``) it saw them.

        Raises ``TimeoutError`` with the count reached, so a stalled run says how far
        it got.
        """
        deadline = time.monotonic() + timeout
        while True:
            count = self.count()
            if count >= n:
                return now()
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink counted {count} of {n} arrivals in {timeout} s")
            time.sleep(poll)

    def measure(
        self,
        name: str,
        n: int,
        send: Callable[[], Mapping[str, float]],
        params: dict[str, Any] | None = None,
        *,
        timeout: float = 300.0,
    ) -> RunResult:
        """Time ``send`` until this sink has counted ``n`` arrivals: the one way every
        contender is measured.

        ``send`` makes ``n`` webhooks go out (sends, enqueues or publishes them) and returns
        when each went, keyed by the ``webhook-id`` each will carry; arrivals minus those
        times are the latencies. The clock stops at the sink, not at the sender, so a
        sender cannot look fast by answering before the work is done.
        """
        self.reset()
        started = now()
        sent = send()
        finished = self.wait_for(n, timeout=timeout)
        arrived = self.arrivals()
        return RunResult(
            name=name,
            requested=n,
            delivered=self.count(),
            seconds=finished - started,
            latency=summarize(latencies(sent, arrived)),
            params=params or {},
        )

    async def wait_for_async(self, n: int, *, timeout: float = 120.0, poll: float = 0.01) -> float:
        """``wait_for`` for code that runs in an event loop (polls from a thread)."""
        return await asyncio.to_thread(self.wait_for, n, timeout=timeout, poll=poll)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
