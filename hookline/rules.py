"""The sender's input rules, in one place: every front door asks these.

The REST API (its pydantic types and so its OpenAPI document are built from these
rules, see ``hookline.api.types``), the dashboard's forms, the ``hookline`` operator
commands and the store all check app names, user and event ids, endpoint URLs, event
types, event data and numbers here, so a value one of them refuses is refused by all,
with the same message.

Each text rule also describes itself as JSON Schema (``json_schema``), the form the
OpenAPI document states it in; a property-based test (schemathesis) checks that the
server accepts what the document allows and refuses the rest.

Text never holds control characters: PostgreSQL cannot store NUL in text at all, and
the others (a tab or newline in an id or a name) are mistakes, not data.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from hookline import addresses
from hookline.events import EVENT_TYPES, WILDCARD, check_event_type
from hookline.exceptions import InvalidJson, ValidationError

__all__ = [
    "APP_NAME",
    "BASIC_PASSWORD",
    "BASIC_USERNAME",
    "BEARER_TOKEN",
    "EVENT_ID",
    "HEADER_NAME",
    "HEADER_VALUE",
    "INT64_MAX",
    "INT64_MIN",
    "IN_FLIGHT_MAX",
    "MAX_BODY_DEPTH",
    "MAX_DATA_DEPTH",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_PEM",
    "RATE_BURST_MAX",
    "RATE_LIMIT_MAX",
    "RATE_LIMIT_MIN",
    "RESERVED_HEADERS",
    "TIMEOUT_MAX",
    "TIME_MAX",
    "URL",
    "USER_ID",
    "InvalidJson",
    "TextRule",
    "basic_auth",
    "bearer_auth",
    "check_client_tls",
    "check_delivery_id",
    "check_event_filter",
    "check_event_type",
    "check_headers",
    "check_rate_burst",
    "check_rate_limit",
    "check_time",
    "check_url",
    "check_url_shape",
    "event_data",
    "parse_json",
    "with_authorization",
]

#: Integers are signed 64-bit wherever they are stored or sent (PostgreSQL ``bigint``,
#: most JSON parsers in other languages); larger numbers travel as strings.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The latest time accepted (9999-12-31T23:59:59Z, the end of Python's ``datetime``).
TIME_MAX = 253402300799.0
#: An endpoint's timeout: more than 0 seconds, at most this many (the store may hold
#: it to less: ``HOOKLINE_MAX_TIMEOUT``).
TIMEOUT_MAX = 60.0
#: An endpoint's ``max_in_flight``: 1 to this (the store may hold it to less:
#: ``HOOKLINE_MAX_IN_FLIGHT``).
IN_FLIGHT_MAX = 1000
#: An endpoint's ``rate_limit``, in deliveries a second: from one every 1,000 seconds to
#: 10,000 a second. Its ``rate_limit_burst`` (how many may go at once after a quiet
#: spell) is 1 to ``RATE_BURST_MAX``.
RATE_LIMIT_MIN = 0.001
RATE_LIMIT_MAX = 10_000.0
RATE_BURST_MAX = 1000
#: How deep event data may nest (objects and arrays, data itself the first level): what
#: orjson, which writes every webhook body, can serialise.
MAX_DATA_DEPTH = 254
#: How deep a request body may nest: orjson's parser limit.
MAX_BODY_DEPTH = 1024

_CONTROL = "\x00-\x1f\x7f"

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class TextRule:
    """A rule for one kind of text: its length, the characters it may hold, and the
    message that says so."""

    name: str
    max_length: int
    pattern: str
    message: str

    def check(self, value: str) -> str:
        """Return ``value`` if it keeps the rule, else raise ``ValidationError``."""
        if not isinstance(value, str) or not 1 <= len(value) <= self.max_length:
            raise ValidationError(self.message)
        if not self._compiled.fullmatch(value):
            raise ValidationError(self.message)
        return value

    @property
    def _compiled(self) -> re.Pattern[str]:
        return _compiled(self.pattern)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_length,
            "pattern": f"^{self.pattern}$",
            "description": self.message[0].upper() + self.message[1:] + ".",
        }


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found


APP_NAME = TextRule(
    "app name",
    200,
    # No leading or trailing space, no control character.
    rf"[^\s{_CONTROL}](?:[^{_CONTROL}]*[^\s{_CONTROL}])?",
    "an app name has 1 to 200 characters, no control characters, "
    "and does not start or end with a space",
)
_ID_CHARS = r"[A-Za-z0-9_.:@\-]+"
USER_ID = TextRule(
    "user id",
    255,
    _ID_CHARS,
    "a user id has 1 to 255 characters, each a letter, a digit or one of _ . : @ -",
)
EVENT_ID = TextRule(
    "event id",
    255,
    _ID_CHARS,
    "an event id has 1 to 255 characters, each a letter, a digit or one of _ . : @ -",
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The last label starts with a letter: a name that ends in a number is read as an IPv4
# address by URL parsers (WHATWG), and no top-level domain is numeric.
_NAME = rf"(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        rf"{_H}:(?::{_H}){{1,6}}",
        rf":(?:(?::{_H}){{1,7}}|:)",
        rf"(?:{_H}:){{6}}{_IPV4}",
        rf"::(?:[Ff]{{4}}:)?{_IPV4}",
    ]
)
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL = TextRule(
    "url",
    2048,
    rf"https?://(?:{_NAME}|{_IPV4}|\[(?:{_IPV6})\])(?::{_PORT})?(?:[/?#][^\s{_CONTROL}]*)?",
    "a URL has up to 2048 characters: https:// or http://, a host (a name or an IP "
    "address), an optional port from 1 to 65535, then a path without spaces or control "
    "characters",
)


def check_url(url: str, *, allow_private: bool) -> str:
    """An endpoint URL as registered: the address policy, then the shape above (the
    policy first, so that a forbidden address is always named as such).

    A host written outside ASCII (``bücher.example``, fullwidth digits) is judged as the
    HTTP client reads it (IDNA/UTS 46, by yarl, as the policy does): the document states
    the shape in ASCII, and such a host is another spelling of an ASCII one.
    """
    if not isinstance(url, str) or len(url) > URL.max_length or "\x00" in url:
        raise ValidationError(URL.message)
    addresses.check_url(url, allow_private=allow_private)
    return check_url_shape(url)


def check_url_shape(url: str) -> str:
    """The shape of ``check_url`` without the address policy (which depends on the
    operator's settings): what the store holds every URL it writes to."""
    if not isinstance(url, str) or url.isascii():
        return URL.check(url)
    try:
        URL.check(_client_host(url))
    except ValueError:
        raise ValidationError(URL.message) from None
    return url


def _client_host(url: str) -> str:
    """``url`` with its authority as the HTTP client reads it; the rest as written."""
    import yarl

    parsed = yarl.URL(url)
    scheme, _, rest = url.partition("://")
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    host = parsed.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    port = "" if parsed.explicit_port is None else f":{parsed.explicit_port}"
    return f"{scheme}://{host}{port}{rest[end:]}"


#: An endpoint's own headers: at most this many, in at most this many bytes together.
MAX_HEADERS = 20
MAX_HEADER_BYTES = 8192
HEADER_NAME = TextRule(
    "header name",
    64,
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+",
    "a header name has 1 to 64 characters, each a letter, a digit or one of "
    "! # $ % & ' * + - . ^ _ ` | ~ (an RFC 9110 token)",
)
HEADER_VALUE = TextRule(
    "header value",
    4096,
    # Visible ASCII with spaces inside: no line breaks (they would start another header).
    r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?",
    "a header value has 1 to 4096 characters of visible ASCII (spaces inside only)",
)
#: Headers hookline sets on every delivery itself (the body's framing and type, its
#: signatures, the trace context): an endpoint's own headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "x-selz-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "traceparent",
        "tracestate",
    }
)


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """An endpoint's own headers, sent with every delivery to it. The messages name the
    header, never its value: values are secrets (tokens, passwords)."""
    if len(headers) > MAX_HEADERS:
        raise ValidationError(f"an endpoint has at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    size = 0
    for name, value in headers.items():
        HEADER_NAME.check(name)
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            raise ValidationError(
                f"the {name} header is set by hookline on every delivery and cannot be "
                "replaced; remove it from headers"
            )
        if lower in seen:
            raise ValidationError(f"the {name} header is given twice (names ignore case)")
        seen.add(lower)
        try:
            HEADER_VALUE.check(value)
        except ValidationError:
            raise ValidationError(
                f"the value of the {name} header: {HEADER_VALUE.message}"
            ) from None
        size += len(name) + len(value) + 4
    if size > MAX_HEADER_BYTES:
        raise ValidationError(
            f"an endpoint's headers take at most {MAX_HEADER_BYTES} bytes together"
        )
    return headers


BASIC_USERNAME = TextRule(
    "basic auth username",
    255,
    rf"[^:{_CONTROL}]+",
    "a basic auth username has 1 to 255 characters, no ':' and no control characters",
)
BASIC_PASSWORD = TextRule(
    "basic auth password",
    1024,
    rf"[^{_CONTROL}]+",
    "a basic auth password has 1 to 1024 characters and no control characters",
)
BEARER_TOKEN = TextRule(
    "bearer token",
    4000,
    # RFC 6750's token68.
    r"[A-Za-z0-9\-._~+/]+=*",
    "a bearer token has 1 to 4000 characters: letters, digits and - . _ ~ + / then "
    "optional '=' at the end",
)


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value of HTTP basic auth (RFC 7617, UTF-8)."""
    BASIC_USERNAME.check(username)
    BASIC_PASSWORD.check(password)
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def bearer_auth(token: str) -> str:
    """The ``Authorization`` value of a bearer token."""
    return "Bearer " + BEARER_TOKEN.check(token)


def with_authorization(
    headers: dict[str, V], *, basic: tuple[str, str] | None = None, bearer: str | None = None
) -> dict[str, V | str]:
    """``headers`` with the ``Authorization`` header that basic or bearer auth make: both
    are only a convenient way to write that one header, which is then kept like any other."""
    given = []
    if basic is not None:
        given.append(basic_auth(*basic))
    if bearer is not None:
        given.append(bearer_auth(bearer))
    if not given:
        return dict(headers)
    if len(given) > 1 or any(name.lower() == "authorization" for name in headers):
        raise ValidationError(
            "give the Authorization header one way only: basic auth, a bearer token, or in headers"
        )
    return {**headers, "Authorization": given[0]}


#: The longest client certificate (a chain) or private key taken, in PEM.
MAX_PEM = 16 * 1024


def check_client_tls(cert: str | None, key: str | None) -> None:
    """An endpoint's client certificate for mutual TLS: a PEM certificate (or a chain,
    the endpoint's own first) and the unencrypted PEM private key that goes with it.
    Messages never quote the key."""
    if cert is None and key is None:
        return
    if cert is None or key is None:
        raise ValidationError("give client_cert and client_key together, or neither")
    if len(cert) > MAX_PEM or len(key) > MAX_PEM:
        raise ValidationError(f"client_cert and client_key have at most {MAX_PEM} characters each")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificates(cert.encode())[0]
    except ValueError:
        raise ValidationError(
            "client_cert is not a certificate in PEM (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError):
        raise ValidationError(
            "client_key is not an unencrypted private key in PEM (-----BEGIN PRIVATE KEY-----)"
        ) from None
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*public) != certificate.public_key().public_bytes(*public):
        raise ValidationError("client_key is not the private key of client_cert")


RATE_LIMIT_MESSAGE = (
    f"rate_limit is a number of deliveries a second from {RATE_LIMIT_MIN:g} "
    f"(one every {1 / RATE_LIMIT_MIN:g} s) to {RATE_LIMIT_MAX:g}"
)
RATE_BURST_MESSAGE = (
    f"rate_limit_burst is a whole number from 1 to {RATE_BURST_MAX}: how many deliveries "
    "may go at once after a quiet spell"
)


def check_rate_limit(rate: float) -> float:
    """An endpoint's rate limit in deliveries a second (held across every worker)."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not RATE_LIMIT_MIN <= rate <= RATE_LIMIT_MAX
    ):
        raise ValidationError(RATE_LIMIT_MESSAGE)
    return float(rate)


def check_rate_burst(burst: int) -> int:
    """How many deliveries a rate-limited endpoint may take at once after a quiet spell
    (kept without a rate limit too, for when one is set); any one second then holds at
    most ``rate_limit + burst - 1`` of them."""
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= RATE_BURST_MAX:
        raise ValidationError(RATE_BURST_MESSAGE)
    return burst


def check_event_filter(event_types: list[str]) -> list[str]:
    """An endpoint's subscription: 1 to 19 known event types, or ``["*"]`` alone."""
    if not event_types or len(event_types) > len(EVENT_TYPES):
        raise ValidationError(f"event_types names 1 to {len(EVENT_TYPES)} event types, or is ['*']")
    if WILDCARD in event_types:
        if len(event_types) != 1:
            raise ValidationError("'*' subscribes to every event type and stands alone")
        return [WILDCARD]
    for event_type in event_types:
        check_event_type(event_type)
    return sorted(set(event_types))


def check_delivery_id(delivery_id: int) -> int:
    if not 1 <= delivery_id <= INT64_MAX:
        raise ValidationError(f"a delivery id is a whole number from 1 to {INT64_MAX}")
    return delivery_id


def check_time(seconds: float) -> float:
    """A moment as epoch seconds, between 1970 and the end of year 9999."""
    if not (math.isfinite(seconds) and 0 <= seconds <= TIME_MAX):
        raise ValidationError("a time is between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return seconds


# -- JSON --------------------------------------------------------------------------------


#: Where a number beyond 64 bits may hide: 19 digits in a row, or a positive exponent.
_LONG_NUMBER = re.compile(rb"\d{19}|\d[eE]\+?\d")


def parse_json(body: bytes | str) -> Any:
    """Parse JSON the way hookline stores and sends it, or say exactly what is wrong.

    orjson parses, and already refuses ``NaN``, ``Infinity`` and numbers beyond a
    double (``1e400``), which Python's own parser would let in as values that turn into
    ``null`` later. What orjson does not refuse is an integer beyond 64 bits: it reads
    one as a float, losing digits without a word. So a body with a run of 19 or more
    digits anywhere, or an exponent (rare: it takes an integer near 2**63, a number such
    as ``1e21``, or such a string), is read again by the standard parser, whose hooks see
    every number exactly. A whole number is an integer however it is written (``1e21``
    is one, as JSON Schema and the document count), so it must fit in 64 bits too.
    """
    raw = body.encode() if isinstance(body, str) else body
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _diagnose(raw, exc) from None
    if _LONG_NUMBER.search(raw):
        return json.loads(raw, parse_int=_int64, parse_float=_float64, parse_constant=_no_constant)
    return value


def _int64(text: str) -> int:
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidJson(
            f"{text} does not fit in a 64-bit integer ({INT64_MIN} to {INT64_MAX}); "
            "send larger numbers as strings"
        )
    return number


def _float64(text: str) -> float:
    number = float(text)
    if number.is_integer() and not INT64_MIN <= number <= INT64_MAX:
        raise InvalidJson(
            f"{text} is a whole number beyond 64 bits ({INT64_MIN} to {INT64_MAX}); "
            "send larger numbers as strings"
        )
    return number


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number; send only finite numbers")


def _diagnose(raw: bytes, error: orjson.JSONDecodeError) -> InvalidJson:
    if "depth limit" in error.msg or "recursion" in error.msg.lower():
        return InvalidJson(f"the JSON nests deeper than {MAX_BODY_DEPTH} levels")
    if "infinity" in error.msg:
        return InvalidJson(
            "a number is too large for a 64-bit float (beyond ±1.8e308); send only finite numbers"
        )
    try:
        # Python's parser takes NaN and Infinity: the hook names them.
        json.loads(raw, parse_int=_int64, parse_float=_float64, parse_constant=_no_constant)
    except InvalidJson as exc:
        return exc
    except (ValueError, RecursionError):
        pass
    return InvalidJson(f"the body is not valid JSON: {error.msg}", malformed=True)


def event_data(data: dict[str, Any], *, max_bytes: int) -> str:
    """An event's data as the JSON text that is stored and sent, within the rules."""
    if not isinstance(data, dict):
        raise ValidationError("data must be a JSON object")
    try:
        text = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise ValidationError(_unwritable(str(exc))) from None
    if len(text) > max_bytes:
        raise ValidationError(
            f"data is {len(text)} bytes once serialised; the limit is {max_bytes} bytes"
        )
    # orjson writes NaN and ±Infinity as null, so only data with a null can hold one.
    if b"null" in text and not _finite(data):
        raise ValidationError(
            "data holds NaN or Infinity, which JSON cannot carry (it would be sent as "
            "null); send only finite numbers"
        )
    return text.decode()


def _finite(value: Any) -> bool:
    """No NaN or ±Infinity anywhere in ``value`` (nesting is bounded: orjson wrote it)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def _unwritable(reason: str) -> str:
    if "Recursion" in reason:
        return f"data nests deeper than {MAX_DATA_DEPTH} levels"
    if "Integer" in reason:
        return (
            f"data holds an integer beyond 64 bits ({INT64_MIN} to {INT64_MAX}); "
            "send larger numbers as strings"
        )
    if "surrogate" in reason:
        return "data holds a lone UTF-16 surrogate, which is not text"
    return f"data cannot be written as JSON: {reason}"
