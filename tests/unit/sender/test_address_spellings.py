"""Every spelling of a forbidden address is refused, at registration and on the socket.

Hypothesis writes forbidden addresses the ways an HTTP client or resolver still reads
them: fullwidth, circled or mathematical digits, ideographic and halfwidth full stops
(yarl's IDNA/UTS 46 mapping turns them into ASCII), decimal/octal/hex and short numeric
forms (the resolver's ``inet_aton`` reads them), IPv6 with leading zeros, mixed case,
any compressed run, a dotted IPv4 tail and a zone id, IPv4 wrapped in IPv6 (mapped,
compatible, NAT64, 6to4, Teredo), trailing dots. Each must be refused at registration,
must normalise to the address it spells, and the socket factory must refuse that
address in the form the client hands it over. Nothing here opens a connection.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from hookline.addresses import (
    FORBIDDEN_NETWORKS,
    ForbiddenTarget,
    check_url,
    forbidden_reason,
    guarded_socket,
    numeric_address,
    target_host,
)
from hookline.exceptions import ForbiddenAddress, ValidationError

V4_NETWORKS = [net for net, _ in FORBIDDEN_NETWORKS if net.version == 4]
V6_NETWORKS = [net for net, _ in FORBIDDEN_NETWORKS if net.version == 6]


def _in(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[int]:
    return st.integers(int(network[0]), int(network[-1]))


forbidden_v4 = st.sampled_from(V4_NETWORKS).flatmap(_in).map(ipaddress.IPv4Address)
#: What a wrapped IPv4 address would reach: loopback and private networks above all.
wrapped_v4 = st.one_of(
    st.sampled_from(["127.0.0.1", "10.0.0.1", "192.168.0.1", "169.254.169.254"]).map(
        ipaddress.IPv4Address
    ),
    forbidden_v4,
)


# -- IPv4 ---------------------------------------------------------------------------------


def _number(value: int, style: str) -> str:
    if style == "oct":
        return "0" + format(value, "o")
    if style == "hex":
        return "0x" + format(value, "x")
    if style == "HEX":
        return "0X" + format(value, "X")
    return str(value)


@st.composite
def numeric_v4(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """``address`` as inet_aton reads it: 1 to 4 parts, each decimal, octal or hex."""
    a, b, c, d = address.packed
    parts = draw(
        st.sampled_from(
            [[a, b, c, d], [a, b, c << 8 | d], [a, b << 16 | c << 8 | d], [int(address)]]
        )
    )
    styles = st.sampled_from(["dec", "dec", "oct", "hex", "HEX"])
    return ".".join(_number(part, draw(styles)) for part in parts)


FULL_STOPS = [".", "\u3002", "\uff0e", "\uff61"]  # ASCII, ideographic, fullwidth, halfwidth


def _digit_forms(digit: str) -> list[str]:
    n = int(digit)
    circled = "\u24ea" if n == 0 else chr(0x2460 + n - 1)
    return [digit, chr(0xFF10 + n), chr(0x1D7CE + n), circled]  # fullwidth, bold, circled


def _letter_forms(letter: str) -> list[str]:
    base = 0xFF21 if letter.isupper() else 0xFF41
    return [letter, letter.swapcase(), chr(base + ord(letter.upper()) - ord("A"))]


@st.composite
def unicode_spelling(draw: st.DrawFn, ascii_host: str) -> str:
    """The same host with characters IDNA maps back to ASCII, and maybe a trailing dot."""
    out = []
    for char in ascii_host:
        if char.isdigit():
            forms = _digit_forms(char)
        elif char == ".":
            forms = FULL_STOPS
        else:
            forms = _letter_forms(char)
        out.append(draw(st.sampled_from(forms)))
    return "".join(out) + draw(st.sampled_from(["", "", ".", "\u3002"]))


@st.composite
def v4_spelling(draw: st.DrawFn) -> tuple[ipaddress.IPv4Address, str]:
    address = draw(forbidden_v4)
    return address, draw(unicode_spelling(draw(numeric_v4(address))))


# -- IPv6 ---------------------------------------------------------------------------------


@st.composite
def forbidden_v6(draw: st.DrawFn) -> ipaddress.IPv6Address:
    """A forbidden IPv6 address, or a forbidden IPv4 address wrapped in IPv6."""
    v4 = int(draw(wrapped_v4))
    wrapped = [
        0xFFFF << 32 | v4,  # mapped
        v4,  # compatible
        0x64FF9B << 96 | v4,  # NAT64, well-known prefix
        0x64FF9B0001 << 80 | draw(st.integers(0, 2**48 - 1)) << 32 | v4,  # local NAT64
        0x2002 << 112 | v4 << 80 | draw(st.integers(0, 2**80 - 1)),  # 6to4
        0x20010000 << 96 | draw(st.integers(0, 2**64 - 1)) << 32 | (v4 ^ 0xFFFFFFFF),  # Teredo
    ]
    value = draw(st.one_of(st.sampled_from(V6_NETWORKS).flatmap(_in), st.sampled_from(wrapped)))
    return ipaddress.IPv6Address(value)


@st.composite
def v6_spelling(draw: st.DrawFn) -> tuple[ipaddress.IPv6Address, str]:
    address = draw(forbidden_v6())
    groups = [int(address.exploded[i : i + 4], 16) for i in range(0, 39, 5)]
    words = [format(g, "x").zfill(draw(st.integers(1, 4))) for g in groups]
    words = ["".join(draw(st.sampled_from([c, c.upper()])) for c in w) for w in words]
    if draw(st.booleans()):  # the last 32 bits as a dotted quad
        words[6:] = [str(ipaddress.IPv4Address(groups[6] << 16 | groups[7]))]
    text = ":".join(words)
    zero_runs = [
        (i, j)
        for i in range(len(words))
        for j in range(i + 1, len(words) + 1)
        if all(w.strip("0") == "" for w in words[i:j])
    ]
    if zero_runs and draw(st.booleans()):
        i, j = draw(st.sampled_from(zero_runs))
        text = ":".join(words[:i]) + "::" + ":".join(words[j:])
    zone = draw(st.sampled_from(["", "", "%25eth0", "%25lo", "%251"]))
    return address, f"[{text}{zone}]"


# -- properties ---------------------------------------------------------------------------


def _assert_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> None:
    url = f"http://{host}:8080/hook"
    try:
        parsed = yarl.URL(url)
    except ValueError:
        # Neither can the client parse it: registration refuses it as invalid.
        with pytest.raises(ValidationError):
            check_url(url, allow_private=False)
        return
    # What the client connects to is the address the spelling stands for...
    normalised = numeric_address(target_host(parsed))
    assert normalised == address, (url, parsed.raw_host)
    # ...which the policy refuses, at registration and on the socket.
    assert forbidden_reason(normalised) is not None
    with pytest.raises(ForbiddenAddress, match=f"points to {normalised}, which is"):
        check_url(url, allow_private=False)
    for addr_info in _as_the_client_dials(parsed):
        with pytest.raises(ForbiddenTarget):
            guarded_socket(addr_info)


def _as_the_client_dials(
    url: yarl.URL,
) -> list[tuple[int, int, int, str, tuple[object, ...]]]:
    """The addr_infos a connection to ``url`` could use: the literal host as aiohttp
    passes it, and what the resolver makes of it (numeric parsing only, never DNS)."""
    host = url.raw_host or ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    literal = (host, 8080, 0, 0) if family == socket.AF_INET6 else (host, 8080)
    infos: list[tuple[int, int, int, str, tuple[object, ...]]] = [
        (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", literal)
    ]
    try:
        resolved = socket.getaddrinfo(
            host.replace("%25", "%"), 8080, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        resolved = []
    infos.extend((f, t, p, c, tuple(a)) for f, t, p, c, a in resolved)
    return infos


@given(v4_spelling())
def test_every_spelling_of_a_forbidden_ipv4_address_is_refused(
    spelled: tuple[ipaddress.IPv4Address, str],
) -> None:
    _assert_refused(*spelled)


@given(v6_spelling())
def test_every_spelling_of_a_forbidden_ipv6_address_is_refused(
    spelled: tuple[ipaddress.IPv6Address, str],
) -> None:
    _assert_refused(*spelled)


@given(
    st.sampled_from(["localhost", "localhost.localdomain", "hooks.localhost", "a.b.localhost"]),
    st.data(),
)
def test_every_spelling_of_localhost_is_refused(name: str, data: st.DataObject) -> None:
    host = data.draw(unicode_spelling(name))
    with pytest.raises(ForbiddenAddress, match="which is loopback"):
        check_url(f"https://{host}/hook", allow_private=False)


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.data())
def test_registration_and_the_socket_agree_on_every_ipv4_address(
    address: ipaddress.IPv4Address, data: st.DataObject
) -> None:
    # Over the whole space, not just the table: one verdict for both checks.
    host = data.draw(unicode_spelling(str(address)))
    url = f"http://{host}/hook"
    reason = forbidden_reason(address)
    addr_info = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(address), 80))
    if reason is None:
        assert check_url(url.replace(host, str(address)), allow_private=False)
        guarded_socket(addr_info).close()
    else:
        with pytest.raises(ForbiddenAddress):
            check_url(url, allow_private=False)
        with pytest.raises(ForbiddenTarget):
            guarded_socket(addr_info)
