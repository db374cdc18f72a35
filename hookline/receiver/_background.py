"""Run a receiver on an event loop of its own, for sync frameworks (Flask, Django).

A WSGI worker thread cannot await; it hands each request to this loop and blocks until the
webhook is stored. Requests from many threads meet on the one loop, so their writes are
grouped just as under ASGI. The loop starts on first use, which is after a pre-forking
server (gunicorn) has forked: each process gets its own loop, inbox and workers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver
    from hookline.receiver.intake import Receipt


class BackgroundReceiver:
    def __init__(self, receiver: Receiver, *, workers: bool = True) -> None:
        self.receiver = receiver
        self._workers = workers
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name="hookline-receiver", daemon=True
                )
                self._thread.start()
                start = self.receiver.start(workers=self._workers)
                asyncio.run_coroutine_threadsafe(start, loop).result()
                self._loop = loop
            return self._loop

    def receive(self, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Verify and store one webhook; blocks the calling thread until it is committed."""
        loop = self._ensure_started()
        return asyncio.run_coroutine_threadsafe(self.receiver.receive(headers, body), loop).result()

    def stop(self) -> None:
        """Stop the workers gracefully and end the loop (for tests and clean exits)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
