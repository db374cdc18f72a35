"""Starting the HTTP server of ``hookline serve`` and ``hookline receive``, one way.

The order makes a failed start one line instead of a banner followed by a traceback:
the command opens its database first (a wrong URL fails there, before anything else);
the listening socket is bound here (a port in use fails here, as a ``ConfigError``);
only then does uvicorn run the app's lifespan and accept connections, and the command's
``announce`` is called once it does. ``uvicorn.run`` would bind inside the server and
report a failure through its logger, after the caller could have said anything.

``run()`` also raises the open-file limit, caps connections well below it and applies
the read limits of ``ServerSettings`` (``protocol`` says why uvicorn needs a protocol
subclass for them).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from hookline.exceptions import ConfigError
from hookline.serving.protocol import GuardedHttpToolsProtocol, protocol_for
from hookline.serving.settings import SERVER_ENV, ServerSettings, raise_open_file_limit

__all__ = [
    "SERVER_ENV",
    "STARTUP_FAILURE",
    "GuardedHttpToolsProtocol",
    "ServerSettings",
    "address",
    "bind",
    "raise_open_file_limit",
    "run",
    "uvicorn_options",
]

log = logging.getLogger("hookline.serving")

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


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """The uvicorn options that apply ``settings``; raises the open-file limit first."""
    open_files = raise_open_file_limit()
    cap = settings.connection_cap(open_files)
    if cap < settings.max_connections:
        log.warning(
            "the open-file limit is %d: at most %d client connections, not %d "
            "(raise the hard limit, e.g. LimitNOFILE=, to allow more)",
            open_files,
            cap,
            settings.max_connections,
        )
    # The protocol also enforces settings.idle_timeout (as uvicorn's keep-alive timer).
    return {"http": protocol_for(settings, cap), "access_log": False}


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def run(
    app: Any,
    sock: socket.socket,
    *,
    settings: ServerSettings,
    announce: Callable[[], None],
    **options: Any,
) -> None:
    """Serve ``app`` on ``sock`` within ``settings`` until a signal; ``announce()`` once it
    accepts connections. ``options`` are more of ``uvicorn.Config``'s (logging, ...).
    """
    config = uvicorn.Config(app, **{**uvicorn_options(settings), **options})
    server = _Server(config, announce)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        # The app's lifespan failed after the command's own checks passed; uvicorn has
        # logged why.
        raise SystemExit(STARTUP_FAILURE)
