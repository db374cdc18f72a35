"""Hostile HTTP clients over raw loopback sockets, and what to measure while they run.

    async with Probe(port, "/healthz") as probe:    # a monitor, on fresh connections
        await attack()
    print(probe.summary())                            # p50 / p99 / max, failures

Every helper talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.eventually import eventually


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the server closes the connection, False if it is still open after
    ``timeout`` seconds (whatever it answered before closing is skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def send_and_read(port: int, head: bytes, body: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` then ``body`` and return the server's first answer, head and body
    (b"" if none came within 20 s). A server that stops reading (it answered early, or
    closed) ends the sending; the answer it sent is read all the same.

    Plain blocking sockets in a thread: asyncio's stream reader raises a reset before
    handing over an answer that arrived ahead of it.
    """
    return await asyncio.to_thread(_exchange, port, head, body)


def _exchange(port: int, head: bytes, body: Iterable[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    return received
                received += chunk
            head_part, _, rest = received.partition(b"\r\n\r\n")
            for line in head_part.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    while len(rest) < int(line.split(b":")[1]):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        rest += chunk
            return head_part + b"\r\n\r\n" + rest
        except OSError:
            return received


def status_of(answer: bytes) -> int | None:
    """The status code of the first answer in ``answer`` (None if there is none)."""
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


#: The monitor, run as a process of its own so that the attacking threads of the test
#: process (and its GIL) never delay a probe: one line per probe, "STATUS SECONDS" or
#: "fail REASON".
_PROBE = r"""
import socket, sys, time
port, path, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
while True:
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            answer = sock.recv(65536)
        status = answer[9:12].decode() if answer.startswith(b"HTTP/1.1 ") else "none"
        print(f"{status} {time.perf_counter() - started}", flush=True)
    except OSError as exc:
        print("fail", repr(exc).replace("\n", " "), flush=True)
    time.sleep(interval)
"""


class Probe:
    """GET ``path`` on a fresh connection every ``interval`` s while the block runs,
    recording each answer's latency (a monitor's view); a failure (no answer, or a 5xx)
    counts as one."""

    def __init__(self, port: int, path: str, *, interval: float = 0.02) -> None:
        self.port, self.path, self.interval = port, path, interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return len(self.latencies) + len(self.failures)

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        # Only whole lines: the monitor is killed at the end, possibly mid-line.
        while (raw := await stdout.readline()).endswith(b"\n"):
            line = raw.decode().strip()
            status, _, rest = line.partition(" ")
            if status.isdigit() and int(status) < 500:
                self.latencies.append(float(rest))
            else:
                self.failures.append(line)

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROBE, str(self.port), self.path, str(self.interval),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdout is not None
        self._reader = asyncio.create_task(self._read(self._proc.stdout))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._proc is not None and self._reader is not None
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        await self._proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def collect(self, count: int) -> Self:
        """Probe until ``count`` answers or failures are in (without an attack)."""
        async with self:
            await eventually(lambda: self.count >= count, message=f"{count} probes")
        return self

    async def during(
        self, attack: Callable[[], Awaitable[object]], *, probes: int = 40, rounds: int = 20
    ) -> list[object]:
        """Run ``attack`` again and again while probing, until ``probes`` answers are in
        (``rounds`` at most); return what each round returned."""
        results = []
        async with self:
            for _ in range(rounds):
                results.append(await attack())
                if self.count >= probes:
                    break
        return results

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        if not self.latencies:
            return f"no answers, {len(self.failures)} failures"
        return (
            f"{len(self.latencies)} probes: p50 {statistics.median(self.latencies) * 1000:.1f} ms,"
            f" p99 {self.percentile(0.99) * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms,"
            f" {len(self.failures)} failures"
        )


@contextlib.asynccontextmanager
async def held_connections(
    port: int, count: int, *, trickle: bytes = b"", every: float = 1.0, reconnect: float = 0.5
) -> AsyncIterator[dict[str, int]]:
    """Keep ``count`` connections open for the block: each sends nothing, or with
    ``trickle`` one byte of it every ``every`` seconds (slowloris), and is opened again
    ``reconnect`` seconds after the server closes it. Yields counters: ``opened``,
    ``closed`` (by the server), ``refused`` (connects that failed)."""
    counts = {"opened": 0, "closed": 0, "refused": 0}

    async def hold() -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts["refused"] += 1
                await asyncio.sleep(reconnect)
                continue
            counts["opened"] += 1
            try:
                for byte in trickle or b"":
                    writer.write(bytes([byte]))
                    if await closed_by_server(reader, every):
                        break
                else:
                    while not await closed_by_server(reader, 3600):
                        pass
                counts["closed"] += 1
            except ConnectionError:
                counts["closed"] += 1
            finally:
                writer.close()
            await asyncio.sleep(reconnect)

    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    try:
        yield counts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
