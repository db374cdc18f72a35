"""The pyreqwest transport: reqwest (Rust, on its own thread) does the HTTP, so an attempt
costs the event loop a fraction of what aiohttp's Python HTTP stack does.

reqwest has no hook on the connect, so the address policy is kept by pinning (see
``pinning``): each client is pinned to an address that was checked, and only that
address is ever connected to. The URL is parsed once with pyreqwest's own parser (the
WHATWG one reqwest uses), so the host that is checked and pinned is the host reqwest
connects to, however the URL spells it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Hashable, Mapping
from datetime import timedelta
from typing import Any

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError
from pyreqwest.http import Url
from pyreqwest.response import Response

from hookline.addresses import ForbiddenTarget
from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.sender.tls import certificate_alert_error
from hookline.sender.transport.base import (
    EXCERPT_BYTES,
    USER_AGENT,
    Reply,
    Resolve,
    describe,
    excerpt,
    timeout_error,
)
from hookline.sender.transport.pinning import MAX_CLIENTS, PIN_TTL, PinnedClients
from hookline.store.records import Job

#: rustls' names of the TLS alerts a server sends when it wants a client certificate it
#: did not get, or does not accept (the same alerts as ``tls._CERTIFICATE_ALERTS``).
_CERTIFICATE_ALERTS = {
    "CertificateRequired": "certificate required",
    "HandshakeFailure": "handshake failure",
    "BadCertificate": "bad certificate",
    "UnknownCA": "unknown CA",
    "CertificateUnknown": "certificate unknown",
}
_ALERT = re.compile(r"received fatal alert: (\w+)")
_INVALID_CERTIFICATE = re.compile(r"invalid peer certificate: (.+)")
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


class ReqwestTransport:
    def __init__(
        self,
        *,
        allow_private: bool,
        ca_bundle: str | None = None,
        resolve: Resolve | None = None,
        max_clients: int = MAX_CLIENTS,
        pin_ttl: float = PIN_TTL,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``clock`` times the pins (``pin_ttl``); the request timeout is always real."""
        self._roots = _certificates(ca_bundle) if ca_bundle else []
        self.clients: PinnedClients[Client] = PinnedClients(
            self._build,
            allow_private=allow_private,
            resolve=resolve,
            size=max_clients,
            ttl=pin_ttl,
            clock=clock.monotonic,
        )

    async def post(self, job: Job, body: bytes, headers: Mapping[str, str]) -> Reply:
        url = Url(job.url)
        host = url.host_str or ""
        target = f"{host.strip('[]')}:{url.port_or_known_default}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout
        try:
            # The lookup counts toward the endpoint's timeout too.
            async with asyncio.timeout_at(deadline):
                async with self.clients.client(host, url.domain, _identity(job)) as client:
                    exchange = _exchange(client, url, body, headers, deadline - loop.time())
                    return await _finished_even_if_cancelled(exchange)
        except TimeoutError:
            return Reply(error=timeout_error(job))
        except ForbiddenTarget as exc:
            # Named when the URL held a name: which name led to the refused address.
            bare = host.strip("[]")
            reason = exc.strerror
            return Reply(error=reason if exc.address == bare else f"{bare}: {reason}")
        except PyreqwestError as exc:
            return Reply(error=reqwest_error(exc, target, job))
        except OSError as exc:  # from the lookup: reqwest's own errors are not OSErrors
            return Reply(error=f"cannot resolve {host}: {exc.strerror or exc}")

    async def close(self) -> None:
        await self.clients.close()

    def _build(self, domain: str | None, address: str | None, identity: Hashable) -> Client:
        builder = (
            ClientBuilder()
            .user_agent(USER_AGENT)
            .no_proxy()  # reqwest reads HTTP(S)_PROXY by default: the pin would not hold
            .follow_redirects(False)
            .referer(False)
            .gzip(False)  # the excerpt is the answer as sent; no Accept-Encoding
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .pool_idle_timeout(timedelta(seconds=30))
        )
        if domain is not None and address is not None:
            # Port 0: the URL's port is used. The name is the URL's host exactly, so
            # reqwest's lookup of it always finds this entry, never the system's DNS.
            builder = builder.resolve(domain, address, 0)
        for root in self._roots:
            builder = builder.add_root_certificate_pem(root)
        if isinstance(identity, _Identity):
            builder = builder.identity_pem(identity.pem)
        return builder.build()


async def _exchange(
    client: Client, url: Url, body: bytes, headers: Mapping[str, str], timeout: float
) -> Reply:
    """Send, and read the status, the excerpt and Retry-After; reqwest's own timeout
    bounds it (the only thing that ends a request it has started)."""
    request = (
        client.post(url)
        .headers(dict(headers))
        .body_bytes(body)
        .timeout(timedelta(seconds=max(timeout, 0.001)))
        .build_streamed()
    )
    async with request as response:
        raw = await response.body_reader.read(EXCERPT_BYTES)
        return Reply(response.status, excerpt(bytes(raw or b"")), _retry_after(response))


def _retry_after(response: Response) -> str | None:
    try:
        return response.get_header("Retry-After")
    except ValueError:  # not text (non-ASCII bytes): not honoured, like any unreadable value
        return None


async def _finished_even_if_cancelled(exchange: Coroutine[Any, Any, Reply]) -> Reply:
    """Await ``exchange``; if cancelled, wait for it to end before letting the
    cancellation through.

    pyreqwest cannot abort a request it has started: cancelling the task that awaits it
    leaves the request going on (connecting, sending, waiting for the answer) until its
    own timeout. An attempt that ended early would let the engine hand its lane back
    while the request may still reach the endpoint, and another engine would send the
    same delivery at the same time. So a cancelled attempt (the engine stopping, a
    probe's timeout) ends when its request does: at the latest at the endpoint's timeout.
    """
    running = asyncio.ensure_future(exchange)
    running.add_done_callback(_retrieved)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


def _retrieved(done: asyncio.Future[Reply]) -> None:
    """Mark an exception as seen: after a cancellation nobody awaits it any more (the
    attempt was abandoned, and the error is what its timeout said)."""
    if not done.cancelled():
        done.exception()


class _Identity:
    """An endpoint's client certificate; clients are keyed by the endpoint's version, so a
    changed certificate gets a new client and the old one ages out."""

    __slots__ = ("key", "pem")

    def __init__(self, job: Job) -> None:
        self.key = (job.endpoint_id, job.endpoint_version)
        self.pem = f"{job.client_cert}\n{job.client_key}".encode()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.key == self.key


def _identity(job: Job) -> _Identity | None:
    if job.client_cert is None or job.client_key is None:
        return None
    return _Identity(job)


def _certificates(ca_bundle: str) -> list[bytes]:
    """Each certificate of the bundle: reqwest adds roots one PEM certificate at a time."""
    with open(ca_bundle, "rb") as file:
        return _PEM_CERTIFICATE.findall(file.read())


def reqwest_error(exc: PyreqwestError, target: str, job: Job) -> str:
    """What went wrong, in the words the aiohttp transport uses, from reqwest's chain of
    causes (the last is the root, e.g. ``Connection refused (os error 111)``)."""
    details = getattr(exc, "details", None) or {}
    causes = [str(cause.get("message", "")) for cause in details.get("causes") or ()]
    text = " / ".join(causes)
    root = causes[-1] if causes else str(exc)
    alert = _ALERT.search(text)
    if alert is not None and alert[1] in _CERTIFICATE_ALERTS:
        return certificate_alert_error(_CERTIFICATE_ALERTS[alert[1]], job)
    invalid = _INVALID_CERTIFICATE.search(text)
    if invalid is not None:
        return f"the TLS certificate of {target} is not valid: {invalid[1]}"
    if isinstance(exc, ConnectError):
        if "Connection refused" in text:
            return f"connection refused by {target}"
        # reqwest says "tcp connect error" when TCP failed; a connect error past that
        # on an https URL is the TLS handshake.
        if "tcp connect error" not in text and job.url.lower().startswith("https:"):
            return f"TLS with {target} failed: {root}"
        return f"cannot connect to {target}: {root}"
    return f"{describe(exc).split(':', 1)[0]}: {root}"


__all__ = ["ReqwestTransport", "reqwest_error"]
