"""The aiohttp transport: one ``ClientSession`` whose connector asks the address policy
about the exact address of every connection it opens.

``TCPConnector(socket_factory=guarded_socket)`` is the hook: aiohttp resolves the name,
then calls the factory with the address it is about to ``connect`` to, so a name
rebound to a private address after registration is refused on the socket itself.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from hookline.addresses import ForbiddenTarget, guarded_socket
from hookline.sender.tls import ClientTls, client_certificate_error
from hookline.sender.transport.base import (
    EXCERPT_BYTES,
    USER_AGENT,
    Reply,
    Resolve,
    describe,
    excerpt,
    timeout_error,
)
from hookline.store.records import Job


class AiohttpTransport:
    def __init__(
        self, *, allow_private: bool, ca_bundle: str | None = None, resolve: Resolve | None = None
    ) -> None:
        self.tls = ClientTls(ca_bundle)
        self.session = new_session(
            allow_private=allow_private,
            resolver=None if resolve is None else _Resolver(resolve),
            ssl_context=self.tls.default,
        )

    async def post(self, job: Job, body: bytes, headers: Mapping[str, str]) -> Reply:
        try:
            async with self.session.post(
                job.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=job.timeout),
                ssl=self.tls.context(job),
            ) as response:
                raw = await response.content.read(EXCERPT_BYTES)
                return Reply(response.status, excerpt(raw), response.headers.get("Retry-After"))
        except TimeoutError:
            return Reply(error=timeout_error(job))
        except aiohttp.ClientConnectorError as exc:
            return Reply(error=client_certificate_error(exc, job) or connection_error(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return Reply(error=describe(exc))

    async def close(self) -> None:
        await self.session.close()


def new_session(
    *,
    allow_private: bool,
    resolver: AbstractResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """Keep-alive connections, every new one checked by the address policy on the
    address it is about to connect to.

    The engine bounds concurrency itself (globally and per endpoint), so the
    connector's own limits are off. ``ssl_context`` is the default TLS of requests (the
    CAs trusted: ``ClientTls.default``); an endpoint with a client certificate passes its
    own per request, and aiohttp keys its pool by it.
    """
    connector = aiohttp.TCPConnector(
        limit=0,
        ttl_dns_cache=60,
        resolver=resolver,
        keepalive_timeout=30,
        socket_factory=None if allow_private else guarded_socket,
        ssl=ssl_context if ssl_context is not None else True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )


def connection_error(exc: aiohttp.ClientConnectorError) -> str:
    """What went wrong, without aiohttp's ``Cannot connect to host ... ssl:default``."""
    target = f"{exc.host}:{exc.port}"
    os_error = exc.os_error
    reason = os_error.strerror or str(os_error)
    if isinstance(os_error, ForbiddenTarget):
        # Named when the URL held a name: which name led to the refused address.
        return reason if os_error.address == exc.host else f"{exc.host}: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {target} is not valid: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS with {target} failed: {reason}"
    if os_error.errno == errno.ECONNREFUSED:
        return f"connection refused by {target}"
    return f"cannot connect to {target}: {reason}"


class _Resolver(AbstractResolver):
    """A ``Resolve`` function as aiohttp's resolver (tests: a name rebound to loopback)."""

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await self._resolve(host)
        ]

    async def close(self) -> None:
        pass


__all__ = ["AiohttpTransport", "connection_error", "new_session"]
