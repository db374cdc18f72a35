"""The address policy: which URLs may be registered and which addresses may be dialled."""

from __future__ import annotations

import socket

import pytest

from hookline.addresses import (
    FORBIDDEN_NETWORKS,
    ForbiddenTarget,
    check_url,
    forbidden_reason,
    guarded_socket,
    numeric_address,
)
from hookline.exceptions import ForbiddenAddress, ValidationError

#: Addresses and a word the reason for refusing them must contain.
FORBIDDEN = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.0.0.1": "private",
    "10.255.255.255": "private",
    "172.16.0.1": "private",
    "172.31.255.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "metadata",
    "100.64.0.1": "carrier-grade NAT",
    "0.0.0.0": "this network",
    "0.1.2.3": "this network",
    "192.0.0.8": "IETF",
    "192.0.2.1": "documentation",
    "192.88.99.1": "6to4",
    "198.18.0.1": "benchmarking",
    "198.19.255.254": "benchmarking",
    "198.51.100.7": "documentation",
    "203.0.113.9": "documentation",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "fc00::1": "unique-local",
    "fd12:3456::1": "unique-local",
    "fec0::1": "site-local",
    "::ffff:127.0.0.1": "IPv4-mapped",
    "::ffff:10.0.0.1": "IPv4-mapped",
    "::ffff:169.254.169.254": "IPv4-mapped",
    "::ffff:8.8.8.8": "IPv4-mapped",  # refused whole: write 8.8.8.8
    "::127.0.0.1": "IPv4-compatible",
    "::10.0.0.1": "IPv4-compatible",
    "64:ff9b::7f00:1": "NAT64",
    "64:ff9b::a00:1": "NAT64",
    "64:ff9b:1::a00:1": "NAT64",
    "2002:7f00:1::1": "6to4",
    "2002:a00:1::": "6to4",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo",  # client 127.0.0.1
    "2001:db8::1": "documentation",
    "2001:2::1": "benchmarking",
    "2001:10::1": "ORCHID",
    "2001:20::1": "ORCHIDv2",
    "100::1": "discard",
    "3fff::1": "documentation",
    "ff02::1": "multicast",
    "4000::1": "2000::/3",
}


def fullwidth(text: str) -> str:
    """``text`` with FULLWIDTH DIGIT ZERO..NINE for its digits."""
    return text.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})


ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450::1"]


@pytest.mark.parametrize(("address", "word"), FORBIDDEN.items())
def test_forbidden_addresses_are_refused_with_their_reason(address: str, word: str) -> None:
    parsed = numeric_address(address)
    assert parsed is not None
    reason = forbidden_reason(parsed)
    assert reason is not None and word in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    parsed = numeric_address(address)
    assert parsed is not None and forbidden_reason(parsed) is None


def test_every_range_in_the_table_is_refused_from_end_to_end() -> None:
    for network, reason in FORBIDDEN_NETWORKS:
        assert forbidden_reason(network[0]) is not None, (network, reason)
        assert forbidden_reason(network[-1]) is not None, (network, reason)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::1%eth0", "::1"),
        ("hooks.example.com", None),
        ("127.0.0.1 x", None),  # glibc's inet_aton would stop at the space
        ("", None),
    ],
)
def test_numeric_spellings_are_read_as_the_resolver_reads_them(
    spelling: str, address: str | None
) -> None:
    parsed = numeric_address(spelling)
    assert (str(parsed) if parsed else None) == address


def _addr_info(host: str, port: int = 9) -> tuple[int, int, int, str, tuple[object, ...]]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockaddr = (host, port, 0, 0) if family == socket.AF_INET6 else (host, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "::1", "::ffff:127.0.0.1", "10.1.1.1"])
def test_the_socket_factory_refuses_forbidden_peers_before_connecting(host: str) -> None:
    with pytest.raises(ForbiddenTarget) as caught:
        guarded_socket(_addr_info(host))
    # An OSError with an errno: aiohttp reports it as a failed connection whose strerror
    # is the policy's message.
    assert isinstance(caught.value, OSError) and caught.value.errno is not None
    assert (caught.value.strerror or "").startswith("refused by the address policy: ")


def test_the_socket_factory_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ForbiddenTarget, match="not a numeric address"):
        guarded_socket(_addr_info("hooks.example.com"))


@pytest.mark.parametrize("host", ["93.184.216.34", "2606:4700:4700::1111"])
def test_the_socket_factory_makes_an_unconnected_socket_for_global_peers(host: str) -> None:
    with guarded_socket(_addr_info(host)) as sock:
        assert sock.type == socket.SOCK_STREAM
        with pytest.raises(OSError):
            sock.getpeername()  # nothing was dialled


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
        "http://127.0.0.1 /",
        "http://%31%32%37.0.0.1/",
        "http://hooks.example.com%00.evil/",
        "http://-hooks.example.com/",
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
        "http://hooks.localhost/",
        "http://localhost./",
        f"http://{fullwidth('127.0.0.1')}:8080/",
        "http://127\u30020\u30020\u30021/",  # ideographic full stops
        "http://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460/",  # circled digits
        f"http://{fullwidth('169.254.169.254')}/",
        "http://[fec0::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::1%25lo]/",
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(url, allow_private=False)
    assert "HOOKLINE_ALLOW_PRIVATE_TARGETS" in caught.value.message
    assert check_url(url, allow_private=True) == url


def test_the_refusal_names_the_address_and_the_reason() -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(f"http://{fullwidth('169.254.169.254')}/latest", allow_private=False)
    assert "points to 169.254.169.254, which is link-local" in caught.value.message


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.0.0.1./"]
)
def test_odd_spellings_of_an_address_are_refused_even_when_private_targets_are_allowed(
    url: str,
) -> None:
    with pytest.raises(ForbiddenAddress, match=r"127\.0\.0\.1, which is loopback"):
        check_url(url, allow_private=False)
    with pytest.raises(ValidationError, match=r"write 127\.0\.0\.1"):
        check_url(url, allow_private=True)
