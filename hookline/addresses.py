"""Which addresses the sender may connect to (beside the sender, not in it: the rules
that check a URL at registration apply it too, and the store uses those rules).

Webhook URLs come from apps, so without a policy anyone could make the platform call
its own private network or a cloud metadata service. The policy is enforced in two
places that see the host the same way the HTTP client does:

* **at send time, on the socket** (the guarantee): ``guarded_socket`` is the socket
  factory of the sender's one HTTP connector, so it sees the exact address of every
  connection the client opens, whether the URL held a name (resolved at send time, so
  a name rebound to 127.0.0.1 after registration is still refused) or an IP literal
  in any spelling, and refuses it before ``connect``;
* **at registration** (the early, friendly refusal): ``check_url`` normalises the host
  as the client does (yarl's IDNA/UTS 46 mapping turns fullwidth or circled digits
  and ideographic full stops into ``127.0.0.1``, and the resolver's ``inet_aton``
  reads ``2130706433``, ``0x7f.1`` or ``127.1`` as 127.0.0.1) and judges the address
  it would connect to.

What is forbidden is one table, ``FORBIDDEN_NETWORKS``, each range with its reason,
plus anything Python does not consider globally reachable and, in IPv6, anything
outside 2000::/3, the only range allocated for global unicast.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import yarl
from aiohappyeyeballs import AddrInfoType

from hookline.exceptions import ForbiddenAddress, ForbiddenTarget, ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Every range a webhook may not be sent to, with the reason an error shows. From the
#: IANA IPv4 and IPv6 special-purpose address registries (all of them: none holds
#: webhook receivers, and several that count as "globally reachable" there, such as
#: NAT64 or AS112, are infrastructure), the deprecated ranges that still route
#: somewhere (site-local, IPv4-compatible), and multicast. The most specific match
#: names the reason.
FORBIDDEN_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        # IPv4
        ("0.0.0.0/8", "'this network' (0.0.0.0/8 reaches the local host)"),
        ("10.0.0.0/8", "private (10.0.0.0/8)"),
        ("100.64.0.0/10", "shared carrier-grade NAT space (100.64.0.0/10)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16, where cloud metadata services live)"),
        ("172.16.0.0/12", "private (172.16.0.0/12)"),
        ("192.0.0.0/24", "reserved for IETF protocols (192.0.0.0/24)"),
        ("192.0.2.0/24", "reserved for documentation (192.0.2.0/24)"),
        ("192.31.196.0/24", "the AS112 DNS sink (192.31.196.0/24)"),
        ("192.52.193.0/24", "multicast tunnelling relays (192.52.193.0/24)"),
        ("192.88.99.0/24", "the deprecated 6to4 relay anycast (192.88.99.0/24)"),
        ("192.168.0.0/16", "private (192.168.0.0/16)"),
        ("192.175.48.0/24", "the AS112 DNS sink (192.175.48.0/24)"),
        ("198.18.0.0/15", "reserved for benchmarking (198.18.0.0/15)"),
        ("198.51.100.0/24", "reserved for documentation (198.51.100.0/24)"),
        ("203.0.113.0/24", "reserved for documentation (203.0.113.0/24)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
        ("255.255.255.255/32", "the broadcast address"),
        # IPv6
        ("::/128", "the unspecified address (reaches the local host)"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible IPv6 (::/96)"),
        ("::ffff:0:0/96", "IPv4-mapped IPv6 (::ffff:0:0/96)"),
        ("64:ff9b::/96", "NAT64 (64:ff9b::/96)"),
        ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
        ("100::/64", "discard-only (100::/64)"),
        ("100:0:0:1::/64", "the dummy IPv6 prefix (100:0:0:1::/64)"),
        ("2001::/23", "reserved for IETF protocols (2001::/23)"),
        ("2001::/32", "Teredo (2001::/32)"),
        ("2001:2::/48", "reserved for benchmarking (2001:2::/48)"),
        ("2001:10::/28", "ORCHID identifiers (2001:10::/28), not addresses"),
        ("2001:20::/28", "ORCHIDv2 identifiers (2001:20::/28), not addresses"),
        ("2001:db8::/32", "reserved for documentation (2001:db8::/32)"),
        ("2002::/16", "6to4 (2002::/16)"),
        ("2620:4f:8000::/48", "the AS112 DNS sink (2620:4f:8000::/48)"),
        ("3fff::/20", "reserved for documentation (3fff::/20)"),
        ("5f00::/16", "segment routing identifiers (5f00::/16)"),
        ("fc00::/7", "unique-local, the private range of IPv6 (fc00::/7)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("fec0::/10", "site-local (fec0::/10, deprecated but still routed by some networks)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
#: IPv6 ranges whose last 32 bits are an IPv4 address (compatible, well-known NAT64).
_LAST_32_BITS_V4 = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))

#: A host name as DNS knows it once yarl has IDNA-encoded it: letters, digits, hyphens
#: and underscores (used by some services) in dot-separated labels.
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")
#: What ``inet_aton`` may read: digits, hex digits with 0x, dots (and nothing it would
#: skip, such as the trailing garbage after a space that glibc ignores).
_INET_ATON = re.compile(r"^[0-9a-fA-FxX.]+$")
#: Names every resolver answers with loopback (RFC 6761), without asking DNS.
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the sender may not connect to ``address``; None if it may."""
    matches = [(net, why) for net, why in FORBIDDEN_NETWORKS if address in net]
    if matches:
        reason = max(matches, key=lambda match: match[0].prefixlen)[1]
        wrapped = _wrapped_ipv4(address)
        if wrapped is None:
            return reason
        # IPv4 in disguise: refused whatever it wraps, but say what that is.
        inner = forbidden_reason(wrapped)
        return f"{reason} wrapping {wrapped}" + (f", which is {inner}" if inner else "")
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "outside 2000::/3, the only IPv6 range allocated for global unicast"
    if not address.is_global:
        return "not globally reachable"
    return None


def _wrapped_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if not isinstance(address, ipaddress.IPv6Address) or int(address) <= 1:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]  # the client, which is where the packets go
    if any(address in network for network in _LAST_32_BITS_V4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def numeric_address(host: str) -> IPAddress | None:
    """The address a host stands for without asking DNS, read as the client reads it.

    IPv6 literals (with or without brackets or a zone id) and dotted IPv4 are what
    ``ipaddress`` reads; the other numeric spellings (``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``) are what the C library's ``inet_aton`` reads, and that
    is what the resolver tries first, so it is the one that must judge them.
    """
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _INET_ATON.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """The socket factory of the sender's connector: refuse a forbidden peer before
    the connection is made.

    ``addr_info`` is what will be passed to ``connect``: an address the resolver
    returned for a name, or the URL's literal host as the client spells it.
    """
    family, type_, proto, _, sockaddr = addr_info
    host = str(sockaddr[0])
    address = numeric_address(host)
    if address is None:
        raise ForbiddenTarget(host, "not a numeric address")
    reason = forbidden_reason(address)
    if reason is not None:
        raise ForbiddenTarget(str(address), reason)
    return socket.socket(family, type_, proto)


def check_url(url: str, *, allow_private: bool) -> str:
    """Validate an endpoint URL as registered; return it unchanged.

    The host is judged after the normalisation the HTTP client applies, so what is
    checked here is what would be connected to.
    """
    if len(url) > 2048:
        raise ValidationError("url is longer than 2048 characters")
    try:
        parsed = yarl.URL(url)
        port = parsed.port
    except ValueError as exc:
        raise ValidationError(f"url {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(f"url {url!r} must start with https:// or http://")
    if parsed.user is not None or parsed.password is not None:
        raise ValidationError("url must not carry a user name or password")
    if port == 0:
        raise ValidationError(f"url {url!r} has port 0")
    host = target_host(parsed)
    if not host:
        raise ValidationError(f"url {url!r} has no host")
    address = numeric_address(host)
    if address is None and not _HOST_NAME.match(host):
        raise ValidationError(f"url {url!r} has a host that is neither a name nor an address")
    reason = _forbidden_host(host, address)
    if reason is not None and not allow_private:
        raise ForbiddenAddress(
            f"url {url!r} points to {reason}; the operator can allow private targets "
            "with HOOKLINE_ALLOW_PRIVATE_TARGETS=1"
        )
    if isinstance(address, ipaddress.IPv4Address) and parsed.raw_host != str(address):
        # HTTP clients disagree on 2130706433, 0x7f.1 or 127.0.0.1. (aiohttp refuses
        # some, resolves others): only the plain dotted quad means the same to all.
        raise ValidationError(f"url {url!r} spells the address {address} oddly; write {address}")
    return url


def target_host(url: yarl.URL) -> str:
    """The host the client connects to, as it reads it: IDNA/UTS 46-normalised by yarl,
    without the trailing dots that DNS ignores (``127.0.0.1.`` is 127.0.0.1)."""
    return (url.raw_host or "").rstrip(".")


def _forbidden_host(host: str, address: IPAddress | None) -> str | None:
    """What a forbidden host points to and why, for the registration error."""
    if address is not None:
        reason = forbidden_reason(address)
        return None if reason is None else f"{address}, which is {reason}"
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host}, which is loopback"
    return None


__all__ = [
    "FORBIDDEN_NETWORKS",
    "ForbiddenTarget",
    "check_url",
    "forbidden_reason",
    "guarded_socket",
    "numeric_address",
    "target_host",
]
