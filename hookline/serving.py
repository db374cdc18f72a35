"""Starting the HTTP server of ``hookline serve`` and ``hookline receive``.

The order makes a failed start one line instead of a banner followed by a traceback:
the command opens its database first (a wrong URL fails there, before anything else);
the listening socket is bound here (a port in use fails here, as a ``ConfigError``);
only then does uvicorn run the app's lifespan and accept connections, and the command's
``announce`` is called once it does. ``uvicorn.run`` would bind inside the server and
report a failure through its logger, after the caller could have said anything.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from hookline.exceptions import ConfigError

#: The exit code of a server whose app did not start (uvicorn's own).
STARTUP_FAILURE = 3


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free port), not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {reason}; choose another --host or --port"
        ) from None
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket, with the port actually bound."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def run(app: Any, sock: socket.socket, *, announce: Callable[[], None], **options: Any) -> None:
    """Serve ``app`` on ``sock`` until a signal; ``announce()`` once it accepts connections.

    ``options`` are ``uvicorn.Config``'s (timeouts, limits, logging).
    """
    server = _Server(uvicorn.Config(app, **options), announce)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        # The app's lifespan failed after the command's own checks passed; uvicorn has
        # logged why.
        raise SystemExit(STARTUP_FAILURE)
