"""A raw TCP listener on 127.0.0.1 and ::1 (one port) that counts accepted connections.

Tests of the address policy point endpoints at it and expect the count to stay 0. It
is a bare asyncio server, not HTTP, so nothing at all that reaches it goes unnoticed:
a connection counts as soon as the kernel hands it over, before any byte is read.

    async with ConnectionCounter() as listener:
        url = f"http://[::1]:{listener.port}/hook"
        ...
        assert listener.accepted == []
"""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType
from typing import Self

from tests.conftest import free_port


class ConnectionCounter:
    def __init__(self) -> None:
        self.port = 0
        self.accepted: list[tuple[object, ...]] = []
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(tuple(writer.get_extra_info("sockname")))
        writer.close()

    async def __aenter__(self) -> Self:
        hosts = ["127.0.0.1"] + (["::1"] if socket.has_ipv6 else [])
        for _ in range(20):  # another process may take the free port first
            self.port = free_port()
            try:
                self._server = await asyncio.start_server(self._accept, hosts, self.port)
                return self
            except OSError:
                continue
        raise RuntimeError("no port free on both 127.0.0.1 and ::1")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
