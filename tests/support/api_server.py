"""``create_server`` served by a real uvicorn on a loopback port, inside the test's loop.

Tests that need real HTTP to the sender (metrics, dashboard forms) use this instead of
spawning ``hookline serve``: it starts in a fraction of a second and shares the loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from fastapi import FastAPI

from hookline.config import EngineSettings, RateLimits
from hookline.server import create_server
from tests.support.eventually import eventually, eventually_sync

ADMIN = "test-admin-7f3c9a1e5b2d4c8f6a0e9b3d"


@asynccontextmanager
async def running_api(
    database_url: str,
    *,
    deliver: bool = True,
    settings: EngineSettings | None = None,
    rate_limits: RateLimits | None = None,
    change: Callable[[FastAPI], None] | None = None,
) -> AsyncIterator[str]:
    """Yield the base URL of a running sender; stop it (lifespan and all) on exit.

    ``change`` is given the application before it starts (to take a route out, say)."""
    app = create_server(
        database_url=database_url,
        admin_token=ADMIN,
        settings=settings or EngineSettings(allow_private_targets=True),
        rate_limits=rate_limits,
        deliver=deliver,
    )
    if change is not None:
        change(app)
    # The socket is bound here and handed over: a port picked first and bound later can
    # be taken meanwhile by another test run on the machine.
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or task.done(), message="the API to start")
    if not server.started:
        task.result()  # raises what stopped it
        raise AssertionError("the API stopped before it started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


#: Rate limits off: throttled guessing answers 429 by design, which would hide the 401s
#: and the other answers that fuzzing tests expect.
NO_RATE_LIMITS = RateLimits(auth_failures=None, tests=None, recovers=None, new_endpoints=None)


@contextmanager
def api_in_thread(database_url: str, *, allow_private_targets: bool) -> Iterator[str]:
    """``create_server`` (no deliveries, no rate limits) on a loopback port in a thread of
    its own, for tests whose clients block (schemathesis, requests)."""
    app = create_server(
        database_url=database_url,
        admin_token=ADMIN,
        settings=EngineSettings(allow_private_targets=allow_private_targets),
        rate_limits=NO_RATE_LIMITS,
        deliver=False,
    )
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    eventually_sync(
        lambda: server.started or not thread.is_alive(), timeout=20, message="the API to start"
    )
    assert server.started, "the API stopped before it started"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
