"""The address policy: which URLs may be registered and which addresses may be dialled."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from hookline.exceptions import ForbiddenAddress, ValidationError
from hookline.sender.addresses import (
    ForbiddenTarget,
    PolicyResolver,
    check_literal_host,
    check_url,
    is_forbidden,
)

FORBIDDEN = [
    "127.0.0.1",
    "127.255.0.9",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "ff02::1",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_private_and_reserved_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(address)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/selz",
        "http://hooks.example.com:8080/selz?app=1",
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
    ],
)
def test_good_urls_pass_unchanged(url: str) -> None:
    assert check_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "hooks.example.com/hook",
        "http://",
        "https:///path",
        "https://user:pw@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://hooks.example.com:0/",
        "https://hooks.example.com:99999/",
        "https://[::1/",
        "https://hooks.example.com/" + "a" * 2048,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_url(url, allow_private=True)
    assert not isinstance(caught.value, ForbiddenAddress)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://LOCALHOST:9000/",
        "http://localhost.localdomain/",
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(url, allow_private=False)
    assert "HOOKLINE_ALLOW_PRIVATE_TARGETS" in caught.value.message or "localhost" in url.lower()
    assert check_url(url, allow_private=True) == url


def test_literal_hosts_are_checked_again_at_send_time() -> None:
    with pytest.raises(ForbiddenAddress):
        check_literal_host("http://127.0.0.1:9/", allow_private=False)
    check_literal_host("http://127.0.0.1:9/", allow_private=True)
    check_literal_host("https://hooks.example.com/", allow_private=False)  # names: the resolver


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses, as DNS under an attacker's control might."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    resolver = PolicyResolver(allow_private=False, inner=FakeResolver("127.0.0.1"))
    with pytest.raises(ForbiddenTarget) as caught:
        await resolver.resolve("hooks.example.com", 443)
    # An OSError, so aiohttp reports it as a failure to connect.
    assert isinstance(caught.value, OSError)
    assert "127.0.0.1" in str(caught.value)
    # aiohttp shows strerror in its connection error: the reason must be there.
    assert "refused by the address policy" in (caught.value.strerror or "")


async def test_forbidden_answers_are_dropped_and_the_rest_kept() -> None:
    inner = FakeResolver("10.0.0.5", "93.184.216.34", "169.254.169.254")
    results: list[Any] = await PolicyResolver(False, inner).resolve("hooks.example.com", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]


async def test_allowed_private_targets_resolve_unchanged() -> None:
    inner = FakeResolver("127.0.0.1", "10.0.0.5")
    results = await PolicyResolver(True, inner).resolve("hooks.internal", 80)
    assert [r["host"] for r in results] == ["127.0.0.1", "10.0.0.5"]


async def test_closing_closes_the_inner_resolver() -> None:
    inner = FakeResolver("93.184.216.34")
    await PolicyResolver(False, inner).close()
    assert inner.closed
