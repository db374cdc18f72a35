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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self


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


class Probe:
    """GET ``path`` on a fresh connection every ``interval`` s while the block runs,
    recording each answer's latency (a monitor's view); a failure counts as one."""

    def __init__(self, port: int, path: str, *, interval: float = 0.02) -> None:
        self.port, self.path, self.interval = port, path, interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        started = time.perf_counter()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(request.encode())
                answer = await reader.read(65536)
        except (OSError, TimeoutError) as exc:
            self.failures.append(repr(exc))
            return
        finally:
            if writer is not None:
                writer.close()
        status = status_of(answer)
        if status is None or status >= 500:
            self.failures.append(f"answer {answer[:40]!r}")
            return
        self.latencies.append(time.perf_counter() - started)

    async def _run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def collect(self, count: int) -> Self:
        """Probe until ``count`` answers or failures are in (without the block)."""
        while len(self.latencies) + len(self.failures) < count:
            await self.once()
            await asyncio.sleep(self.interval)
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
                if len(self.latencies) + len(self.failures) >= probes:
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
