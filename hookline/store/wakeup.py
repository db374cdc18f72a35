"""Notifications between processes on one SQLite file, without polling.

SQLite has no ``NOTIFY``. Each listening process binds a Unix datagram socket in a
directory beside the database file (``<file>-wake/``, like SQLite's own ``-wal`` and
``-shm``); a process that committed a notifying transaction sends one empty datagram to
every socket there. A datagram wakes the listener's event loop at once, and costs the
sender a few microseconds per listener: far less than a poll interval of latency, or a
poll's query. A wake-up is only a hint (a full socket buffer drops it, a listener polls
besides), so nothing depends on its arrival.

Unix socket paths are limited to about 100 bytes, and a database may live deeper than
that; every path is therefore reached through ``/proc/self/fd/<directory fd>/<name>``,
which Linux resolves like any other path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
from collections.abc import Callable

log = logging.getLogger("hookline.store")


def wake_dir(db_path: str) -> str:
    return f"{db_path}-wake"


class _Directory:
    """The directory of listening sockets, held open so short paths reach it."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def short(self, name: str) -> str:
        return f"/proc/self/fd/{self.fd}/{name}"

    def close(self) -> None:
        os.close(self.fd)


class Notifier:
    """Sends a wake-up to every process listening on a channel of one database."""

    def __init__(self, db_path: str) -> None:
        self._path = wake_dir(db_path)
        self._dir: _Directory | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def notify(self, channel: str) -> None:
        try:
            if self._dir is None:
                if not os.path.isdir(self._path):
                    return  # nobody has ever listened
                self._dir = _Directory(self._path)
            names = os.listdir(self._path)
        except OSError as exc:
            log.debug("no wake-ups beside the database: %s", exc)
            return
        prefix = channel + "."
        for name in names:
            if name.startswith(prefix):
                self._send(name)

    def _send(self, name: str) -> None:
        assert self._dir is not None
        try:
            self._sock.sendto(b"", self._dir.short(name))
        except BlockingIOError:
            pass  # its buffer is full of wake-ups it has not read yet: it is awake
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                # Its process died without removing it (kill -9).
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self._path, name))
            else:
                log.debug("wake-up to %s failed: %s", name, exc)

    def close(self) -> None:
        self._sock.close()
        if self._dir is not None:
            self._dir.close()
            self._dir = None


class Listener:
    """Calls ``callback`` in the running event loop whenever a wake-up arrives."""

    def __init__(self, db_path: str, channel: str, callback: Callable[[], None]) -> None:
        self._dir = _Directory(wake_dir(db_path))
        self._name = f"{channel}.{os.getpid()}.{secrets.token_hex(4)}"
        self._callback = callback
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(self._dir.short(self._name))
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        # Many wake-ups since the last read are one: read them all, call back once.
        try:
            while True:
                self._sock.recv(64)
        except (BlockingIOError, InterruptedError):
            pass
        self._callback()

    async def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._dir.path, self._name))
        self._dir.close()
