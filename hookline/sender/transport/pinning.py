"""Clients pinned to checked addresses: the address policy for an HTTP client that has
no hook on the connect.

Hand-written, because no library does it: pyreqwest (reqwest) resolves names itself and
offers no hook that sees the address before the connect, only a fixed
``resolve(domain, address)`` per client. So the transport resolves each name itself
(asynchronously), judges every address with the address policy, and builds a client
pinned to the first allowed one; the request then goes to that exact address, which is
the one that was checked, so a DNS answer that changes between the check and the
connect (rebinding) cannot reach anything else. A pin lasts ``ttl`` seconds; the name
is then resolved and checked again, and a changed address gets a new client. A literal
address in the URL is judged as the client reads it.

A client also carries its TLS identity (the trusted CAs, an endpoint's client
certificate), so there is one per (host, identity). ``size`` bounds how many are kept;
the least recently used is closed once its requests in flight are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from hookline.addresses import ForbiddenTarget, forbidden_reason, numeric_address
from hookline.sender.transport.base import Resolve

#: Seconds a checked address is used before the name is resolved and checked again
#: (what aiohttp's DNS cache kept too).
PIN_TTL = 60.0
#: Clients kept at once, one per (host, TLS identity).
MAX_CLIENTS = 1024


class Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Closable)
#: Builds a client: (the name to pin or None for a literal address, the address to pin
#: it to, the TLS identity) -> client.
Build = Callable[[str | None, str | None, Hashable], C]


async def system_resolve(host: str) -> list[str]:
    """The host's addresses from the system resolver, in its order of preference
    (getaddrinfo in the loop's thread pool, as aiohttp's default resolver does)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(eq=False)
class _Entry(Generic[C]):
    client: C
    address: str | None
    expires: float
    in_use: int = 0
    retired: bool = field(default=False)


class PinnedClients(Generic[C]):
    def __init__(
        self,
        build: Build[C],
        *,
        allow_private: bool,
        resolve: Resolve | None = None,
        ttl: float = PIN_TTL,
        size: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._allow_private = allow_private
        self._resolve = resolve or system_resolve
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], _Entry[C]] = OrderedDict()
        #: Lookups under way, so a burst of requests to one name resolves it once.
        self._lookups: dict[str, asyncio.Future[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def client(
        self, host: str, domain: str | None, identity: Hashable = None
    ) -> AsyncIterator[C]:
        """The client for ``host`` (as the client's URL parser reads it: a name, a dotted
        IPv4 or a bracketed IPv6) with ``identity``, pinned to a checked address.

        ``domain`` is the host when it is a name, None when it is a literal address.
        Raises ``ForbiddenTarget`` for an address the policy refuses and ``OSError``
        (``socket.gaierror``) for a name that does not resolve.
        """
        key = (host, identity)
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or entry.expires <= now:
            try:
                address = await self._checked(host, domain)
            except OSError:
                # Refused or unresolvable now: the old pin must not be used again.
                await self._retire(key)
                raise
            entry = self._entries.get(key)  # another request may have pinned it meanwhile
            if entry is not None and entry.address != address:
                await self._retire(key)
                entry = None
            if entry is None:
                entry = _Entry(self._build(domain, address, identity), address, 0.0)
                self._entries[key] = entry
                await self._evict()
            entry.expires = now + self._ttl
        self._entries.move_to_end(key)
        entry.in_use += 1
        try:
            yield entry.client
        finally:
            entry.in_use -= 1
            if entry.retired and entry.in_use == 0:
                await entry.client.close()

    async def close(self) -> None:
        for key in list(self._entries):
            await self._retire(key)

    async def _checked(self, host: str, domain: str | None) -> str | None:
        """The address to pin ``domain`` to (None for a literal address, which needs no
        pin), after the address policy has judged it."""
        if domain is None:
            address = numeric_address(host)
            if address is None:
                raise ForbiddenTarget(host, "not a numeric address")
            self._judge(str(address))
            return None
        lookup = self._lookups.get(domain)
        if lookup is None:
            lookup = self._lookups[domain] = asyncio.ensure_future(self._lookup(domain))
            lookup.add_done_callback(lambda done: self._lookup_done(domain, done))
        # Shielded: a request that times out does not cancel the lookup others await.
        return await asyncio.shield(lookup)

    async def _lookup(self, domain: str) -> str:
        """Resolve and judge every address; the first allowed one is pinned, as
        aiohttp's guarded socket would skip the refused ones and connect to it."""
        addresses: Sequence[str] = await self._resolve(domain)
        refused: ForbiddenTarget | None = None
        for address in addresses:
            try:
                self._judge(address)
            except ForbiddenTarget as exc:
                refused = refused or exc
                continue
            return address
        if refused is not None:
            raise refused
        raise socket.gaierror(socket.EAI_NONAME, "no address")

    def _lookup_done(self, domain: str, done: asyncio.Future[str]) -> None:
        self._lookups.pop(domain, None)
        if not done.cancelled():
            done.exception()  # retrieved: nobody may be waiting any more

    def _judge(self, text: str) -> None:
        if self._allow_private:
            return
        address = numeric_address(text)
        if address is None:
            raise ForbiddenTarget(text, "not a numeric address")
        reason = forbidden_reason(address)
        if reason is not None:
            raise ForbiddenTarget(str(address), reason)

    async def _evict(self) -> None:
        while len(self._entries) > self._size:
            oldest = next(iter(self._entries))
            await self._retire(oldest)

    async def _retire(self, key: tuple[str, Hashable]) -> None:
        """Forget a client; close it now, or once its last request in flight is done."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        entry.retired = True
        if entry.in_use == 0:
            await entry.client.close()


__all__ = ["MAX_CLIENTS", "PIN_TTL", "PinnedClients", "system_resolve"]
