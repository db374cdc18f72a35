"""Which addresses the sender may connect to.

Webhook URLs come from apps, so without a policy anyone could make the platform call
its own private network or a cloud metadata service. The check runs on the addresses
the connection actually uses: the resolver below filters what DNS answers at send time,
so a name that resolved to a public address when the endpoint was registered and to
127.0.0.1 later is still refused.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookline.exceptions import ForbiddenAddress, ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_forbidden(address: str) -> bool:
    """True for anything that is not a global unicast address.

    ``is_global`` is false for private, loopback, link-local (which holds the
    169.254.169.254 metadata service), shared (100.64/10), reserved, multicast and
    unspecified ranges. IPv4 addresses wrapped in IPv6 are judged as IPv4.
    """
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, *, allow_private: bool) -> str:
    """Validate an endpoint URL as registered; return it unchanged."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(f"url {url!r} must start with https:// or http://")
    if not parts.hostname:
        raise ValidationError(f"url {url!r} has no host")
    if parts.username or parts.password:
        raise ValidationError("url must not carry a user name or password")
    if port == 0:
        raise ValidationError(f"url {url!r} has port 0")
    if len(url) > 2048:
        raise ValidationError("url is longer than 2048 characters")
    literal = _literal(parts.hostname)
    if literal is not None and not allow_private and is_forbidden(str(literal)):
        raise ForbiddenAddress(
            f"url {url!r} points to {literal}, a private, loopback, link-local or reserved "
            "address; the operator can allow such targets with HOOKLINE_ALLOW_PRIVATE_TARGETS=1"
        )
    if not allow_private and parts.hostname.lower() in ("localhost", "localhost.localdomain"):
        raise ForbiddenAddress(f"url {url!r} points to localhost, which is not allowed")
    return url


def check_literal_host(url: str, *, allow_private: bool) -> None:
    """Refuse an IP-literal URL at send time (aiohttp does not resolve literals)."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    literal = _literal(host)
    if literal is not None and is_forbidden(str(literal)):
        raise ForbiddenAddress(f"{literal} is a private, loopback or reserved address")


class PolicyResolver(AbstractResolver):
    """Resolves names like aiohttp's default resolver, then drops forbidden addresses."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        allowed = [r for r in results if not is_forbidden(r["host"])]
        if not allowed:
            # An OSError subclass, so aiohttp reports it as a connection error.
            raise ForbiddenTarget(host, [r["host"] for r in results])
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class ForbiddenTarget(OSError):
    def __init__(self, host: str, addresses: list[Any]) -> None:
        # With an errno, the message is the strerror that aiohttp's connection error
        # shows (a one-argument OSError would show up as "[None]" in the attempt log).
        super().__init__(
            errno.EACCES,
            f"{host} resolves only to private, loopback or reserved addresses "
            f"({', '.join(map(str, addresses))}); refused by the address policy",
        )
