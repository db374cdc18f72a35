"""What the sender asks of an HTTP client, and the words it uses for what went wrong.

An attempt needs very little of HTTP: send one signed POST to the endpoint's URL and
get back the status, the first KiB of the answer and its ``Retry-After`` header, or a
message saying why there is no answer. ``Transport`` is that, plus ``close``. The
engine, the health probes and the tests depend on it alone, so the HTTP library behind
it is chosen by measurement and can change without touching them.

Every transport keeps the same rules: the endpoint's timeout covers the whole attempt
(connect, send, answer), redirects are never followed, the answer is not decompressed
(no ``Accept-Encoding`` is sent), proxies from the environment are ignored, and every
connection goes to an address the address policy (``hookline.addresses``) has
judged, unless the operator allows private targets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hookline import __version__
from hookline.store.records import Job

EXCERPT_BYTES = 1024
USER_AGENT = f"hookline/{__version__}"

#: Resolves a host name to its addresses (as strings, in the order to try them); tests
#: pass one that lies, to stand for a name rebound to a private address.
Resolve = Callable[[str], Awaitable[Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Reply:
    """What came of sending: an answer (``status``), or an ``error`` message."""

    status: int | None = None
    #: The first ``EXCERPT_BYTES`` of the answer's body, decoded leniently.
    excerpt: str | None = None
    #: The answer's ``Retry-After`` header as sent (``parse_retry_after`` reads it).
    retry_after: str | None = None
    error: str | None = None


class Transport(Protocol):
    """Sends attempts; one per engine, shared by deliveries and health probes."""

    async def post(self, job: Job, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST ``body`` to ``job.url`` within ``job.timeout``, with the endpoint's TLS
        identity if it has one. Failures of the exchange come back as ``Reply.error``."""
        ...

    async def close(self) -> None:
        """Close every connection; no ``post`` may follow."""
        ...


def excerpt(raw: bytes) -> str:
    """The answer's first bytes as text: invalid UTF-8 replaced, and NUL too, since
    PostgreSQL text cannot hold it and an answer with one must still be recorded."""
    return raw[:EXCERPT_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")


def timeout_error(job: Job) -> str:
    return f"no answer within the endpoint's timeout of {job.timeout:g} s"


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = [
    "EXCERPT_BYTES",
    "USER_AGENT",
    "Reply",
    "Resolve",
    "Transport",
    "describe",
    "excerpt",
    "timeout_error",
]
