"""Clients pinned to checked addresses (the address policy without a connect hook), with
a fake resolver, a fake clock and fake clients: what is resolved, judged, pinned,
re-resolved after the TTL, and closed when the bound is reached."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Hashable, Sequence

import pytest

from hookline.addresses import ForbiddenTarget
from hookline.sender.transport.pinning import PinnedClients

PUBLIC = "93.184.215.14"
OTHER_PUBLIC = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


class FakeClient:
    def __init__(self, domain: str | None, address: str | None, identity: Hashable) -> None:
        self.pinned = (domain, address, identity)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class Dns:
    """Answers from a table that a test changes; counts the lookups."""

    def __init__(self, **answers: Sequence[str]) -> None:
        self.answers = {name.replace("_", "."): list(a) for name, a in answers.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str) -> Sequence[str]:
        self.lookups.append(host)
        await asyncio.sleep(0)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pinned(dns: Dns, *, allow_private: bool = False, size: int = 8, clock: Clock | None = None):  # type: ignore[no-untyped-def]
    built: list[FakeClient] = []

    def build(domain: str | None, address: str | None, identity: Hashable) -> FakeClient:
        built.append(FakeClient(domain, address, identity))
        return built[-1]

    clients = PinnedClients(
        build,
        allow_private=allow_private,
        resolve=dns,
        ttl=60.0,
        size=size,
        clock=clock or Clock(),
    )
    return clients, built


async def _use(
    clients: PinnedClients[FakeClient], host: str, identity: Hashable = None
) -> FakeClient:
    domain = None if host[0].isdigit() or host.startswith("[") else host
    async with clients.client(host, domain, identity) as client:
        return client


async def test_a_name_is_pinned_to_the_address_that_was_checked() -> None:
    clients, _ = pinned(Dns(hooks_example_com=[PUBLIC]))
    client = await _use(clients, "hooks.example.com")
    assert client.pinned == ("hooks.example.com", PUBLIC, None)
    assert await _use(clients, "hooks.example.com") is client  # reused within the TTL


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (["127.0.0.1"], "refused by the address policy: 127.0.0.1 is loopback"),
        (["10.1.2.3", "::1"], "refused by the address policy: 10.1.2.3 is private (10.0.0.0/8)"),
        (["169.254.169.254"], "169.254.169.254 is link-local"),
        (["::ffff:127.0.0.1"], "::ffff:7f00:1 is IPv4-mapped IPv6"),
    ],
)
async def test_a_name_that_resolves_only_to_forbidden_addresses_is_refused(
    answer: list[str], message: str
) -> None:
    clients, built = pinned(Dns(rebound_example_com=answer))
    with pytest.raises(ForbiddenTarget) as refused:
        await _use(clients, "rebound.example.com")
    assert message in str(refused.value.strerror)
    assert built == [], "no client is built for a refused name"


async def test_of_a_mixed_answer_only_an_allowed_address_is_pinned() -> None:
    clients, _ = pinned(Dns(mixed_example_com=["127.0.0.1", "10.0.0.1", PUBLIC]))
    assert (await _use(clients, "mixed.example.com")).pinned[1] == PUBLIC


async def test_a_literal_address_is_judged_as_the_client_reads_it() -> None:
    clients, built = pinned(Dns())
    for host in ("127.0.0.1", "[::1]", "[::ffff:7f00:1]", "10.0.0.1"):
        with pytest.raises(ForbiddenTarget):
            await _use(clients, host)
    assert built == []
    client = await _use(clients, PUBLIC)
    assert client.pinned == (None, None, None)  # nothing to pin: the URL holds the address


async def test_private_targets_allowed_still_pins_names_to_what_was_resolved() -> None:
    clients, _ = pinned(Dns(hooks_internal=["127.0.0.1"]), allow_private=True)
    assert (await _use(clients, "hooks.internal")).pinned == ("hooks.internal", "127.0.0.1", None)
    assert (await _use(clients, "[::1]")).pinned == (None, None, None)


async def test_a_name_that_turns_forbidden_after_the_ttl_is_refused_and_its_client_closed() -> None:
    clock = Clock()
    dns = Dns(hooks_example_com=[PUBLIC])
    clients, _ = pinned(dns, clock=clock)
    first = await _use(clients, "hooks.example.com")
    dns.answers["hooks.example.com"] = ["127.0.0.1"]  # rebound
    clock.now += 59
    assert await _use(clients, "hooks.example.com") is first  # still within the TTL
    clock.now += 2
    with pytest.raises(ForbiddenTarget, match=r"127\.0\.0\.1 is loopback"):
        await _use(clients, "hooks.example.com")
    assert first.closed and len(clients) == 0
    assert dns.lookups == ["hooks.example.com"] * 2


async def test_a_changed_address_after_the_ttl_gets_a_new_client() -> None:
    clock = Clock()
    dns = Dns(hooks_example_com=[PUBLIC])
    clients, _ = pinned(dns, clock=clock)
    first = await _use(clients, "hooks.example.com")
    clock.now += 61
    assert await _use(clients, "hooks.example.com") is first  # same address: kept
    dns.answers["hooks.example.com"] = [OTHER_PUBLIC]
    clock.now += 61
    second = await _use(clients, "hooks.example.com")
    assert second.pinned[1] == OTHER_PUBLIC and first.closed and not second.closed


async def test_a_name_that_stops_resolving_drops_its_pin() -> None:
    clock = Clock()
    dns = Dns(hooks_example_com=[PUBLIC])
    clients, _ = pinned(dns, clock=clock)
    first = await _use(clients, "hooks.example.com")
    del dns.answers["hooks.example.com"]
    clock.now += 61
    with pytest.raises(socket.gaierror):
        await _use(clients, "hooks.example.com")
    assert first.closed


async def test_clients_are_bounded_and_the_least_recently_used_is_closed_once_idle() -> None:
    dns = Dns(a_example=[PUBLIC], b_example=[PUBLIC], c_example=[PUBLIC])
    clients, built = pinned(dns, size=2)
    async with clients.client("a.example", "a.example") as a:
        await _use(clients, "b.example")
        await _use(clients, "c.example")  # evicts a.example, the least recently used
        assert len(clients) == 2
        assert not a.closed, "a client is not closed under a request in flight"
    assert a.closed
    b, c = built[1:]
    await _use(clients, "b.example")
    await _use(clients, "a.example")  # evicts c.example now
    assert c.closed and not b.closed and len(built) == 4


async def test_each_tls_identity_has_a_client_of_its_own() -> None:
    clients, _ = pinned(Dns(hooks_example_com=[PUBLIC]))
    plain = await _use(clients, "hooks.example.com")
    own = await _use(clients, "hooks.example.com", identity=("ep_1", 1.0))
    assert own is not plain and own.pinned[2] == ("ep_1", 1.0)


async def test_a_burst_to_one_name_resolves_it_once() -> None:
    dns = Dns(hooks_example_com=[PUBLIC])
    clients, built = pinned(dns)
    await asyncio.gather(*(_use(clients, "hooks.example.com") for _ in range(20)))
    assert dns.lookups == ["hooks.example.com"]
    assert len(clients) == len(built) == 1


async def test_close_closes_every_client() -> None:
    clients, built = pinned(Dns(a_example=[PUBLIC], b_example=[PUBLIC]))
    await _use(clients, "a.example")
    await _use(clients, "b.example")
    await clients.close()
    assert all(c.closed for c in built) and len(clients) == 0
