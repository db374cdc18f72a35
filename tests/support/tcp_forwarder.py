"""A TCP forwarder in the test's event loop: ``host:port`` -> ``target``.

Two uses: reaching PostgreSQL (which listens on loopback only) from a network namespace
through an address of the test's own bridge; and taking the database away from a
process and giving it back (``cut()`` drops every connection and refuses new ones
until ``start()`` again), without restarting the server other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.conftest import free_port


class Forwarder:
    def __init__(
        self, target: tuple[str, int], host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.target = target
        self.host = host
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a dead server would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst, (writer, up_writer)))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        # Either side closing (or a cut) closes both, so the peers see the drop at once.
        for writer in both:
            with contextlib.suppress(Exception):
                writer.transport.abort()
