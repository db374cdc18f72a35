"""What both HTTP servers (``hookline serve`` and ``hookline receive``) allow a client.

Every value has an environment variable and a default chosen so that no single client
can hold the process's memory, CPU or open files: see "Limits" in docs/operations.md.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from hookline.config import EnvTable, parse_count, parse_number, values_from_env
from hookline.exceptions import ConfigError

log = logging.getLogger("hookline.serving")

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Read limits and timeouts of one HTTP server process."""

    #: Open client connections at once; never more than half the open-file limit, so
    #: outgoing deliveries and the database always have descriptors left.
    max_connections: int = 1000
    #: Bytes of request line and headers together (431 above it).
    max_header_bytes: int = 32 * KIB
    #: Header fields in one request (431 above it).
    max_header_count: int = 100
    #: Seconds a connection may stay open without starting a request (new, or kept alive).
    idle_timeout: float = 5.0
    #: Seconds from a request's first byte to the end of its headers (408 after it).
    header_timeout: float = 10.0
    #: Seconds from the end of the headers to the end of the body (closed after it).
    body_timeout: float = 30.0
    #: Bytes of a request body the server still reads, and drops, after the application
    #: answered without reading it (401, 413): enough for the client to finish sending
    #: and read the answer instead of a reset connection; then the connection is closed.
    drain_bytes: int = 32 * MIB
    #: Largest request body of the API's routes, except the batch route below (413).
    max_body_bytes: int = 1 * MIB
    #: Largest body of ``POST /api/v1/events/batch`` (up to 1,000 events).
    max_batch_body_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be more than 0 seconds")
        for name in ("max_connections", "max_header_bytes", "max_header_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Settings from ``HOOKLINE_*`` variables (see ``SERVER_ENV``)."""
        return cls(**values_from_env(SERVER_ENV, env))  # type: ignore[arg-type]

    def connection_cap(self, open_files: int) -> int:
        """``max_connections``, held to half of ``open_files`` (the soft RLIMIT_NOFILE)."""
        return max(1, min(self.max_connections, open_files // 2))


#: Each setting's environment variable and parser.
SERVER_ENV: EnvTable = {
    "max_connections": ("HOOKLINE_MAX_CONNECTIONS", parse_count),
    "max_header_bytes": ("HOOKLINE_MAX_HEADER_BYTES", parse_count),
    "max_header_count": ("HOOKLINE_MAX_HEADER_COUNT", parse_count),
    "idle_timeout": ("HOOKLINE_IDLE_TIMEOUT", parse_number),
    "header_timeout": ("HOOKLINE_HEADER_TIMEOUT", parse_number),
    "body_timeout": ("HOOKLINE_BODY_TIMEOUT", parse_number),
    "drain_bytes": ("HOOKLINE_DRAIN_BYTES", parse_count),
    "max_body_bytes": ("HOOKLINE_MAX_BODY_BYTES", parse_count),
    "max_batch_body_bytes": ("HOOKLINE_MAX_BATCH_BODY_BYTES", parse_count),
}


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where the system allows it, and
    return the soft limit now in force (the connection cap is derived from it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft
