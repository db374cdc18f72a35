"""Rate limits keyed by a string, kept in this process: one mechanism for every limit.

``RateLimiter`` is GCRA (the generic cell rate algorithm, a token bucket written as one
timestamp per key): a ``Rate`` of ``count`` per ``period`` allows a burst of ``count``
at once, then one more every ``period / count`` seconds, and says exactly how long to
wait when it refuses (the ``Retry-After`` of a 429).

Written by hand on purpose: the ``limits`` package (PyPI) was considered; it offers
fixed, moving and sliding windows over memory, Redis, Memcached or MongoDB. hookline has
none of those shared stores, so its one real advantage does not apply, while its moving
window keeps a timestamp per allowed hit and its clock cannot be given to it in tests.
GCRA keeps one float per key and fits in a page. Measured (limits 5.8, one core): 2.4 µs
per hit here against 4.9 to 7.1 µs for its three in-memory strategies; 100,000 keys at
their limit hold 23 MiB here, 115 MiB in its moving window.

**Each process keeps its own counts.** Behind one address, ``N`` ``serve`` processes let
a client through up to ``N`` times the configured rate. Keeping the counts in the
database instead would add a write to every limited request (and to every failed
sign-in, which is what a flood consists of); for limits whose purpose is to stop floods
and runaway scripts, not to bill, a bound of ``N`` times is the better trade.

``FailureThrottle`` builds on it to slow guessing of tokens: failures per client address.

``EndpointRate`` is the same algorithm for an endpoint's ``rate_limit``, which must hold
across every worker on every host: there the one timestamp lives in the endpoint's row,
and the store reads and advances it inside the claim transaction (which runs one at a
time), so the count is shared, not kept per process.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from hookline.exceptions import ConfigError

Clock = Callable[[], float]

#: Sums of float intervals drift by far less than this; without it a request exactly on
#: time (the first of a rate of 1/hour, on a clock at 10^6 s) could be refused.
ROUNDING = 1e-6

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds, all of them at once if need be."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.period > 0 or not math.isfinite(self.period):
            raise ConfigError(f"a rate needs a count of at least 1 and a period > 0: {self}")

    @property
    def interval(self) -> float:
        """Seconds between two requests once the burst is spent."""
        return self.period / self.count

    def __str__(self) -> str:
        names = {v: k for k, v in PERIODS.items()}
        return f"{self.count}/{names.get(self.period, f'{self.period:g}s')}"

    @classmethod
    def parse(cls, name: str, text: str) -> Rate | None:
        """``"10/minute"``, ``"100/hour"``, ``"5/30"`` (seconds); ``"off"`` is no limit.

        ``name`` (the variable the text came from) is named in the error."""
        text = text.strip().lower()
        if text in ("off", "none", "0"):
            return None
        count, _, period = text.partition("/")
        try:
            seconds = PERIODS[period] if period in PERIODS else float(period.rstrip("s"))
            return cls(int(count), seconds)
        except (ValueError, ConfigError):
            raise ConfigError(
                f"{name}={text!r} is not a rate; write COUNT/PERIOD with PERIOD one of "
                "second, minute, hour, day or a number of seconds (e.g. 10/minute), or off"
            ) from None


class RateLimiter:
    """GCRA over string keys: ``hit`` counts a request or says how long to wait.

    A key whose theoretical arrival time has passed holds nothing a fresh key would not,
    so it is dropped; at most ``max_keys`` are kept (the least recently hit go first,
    which at worst lets one of them start a fresh burst).
    """

    def __init__(self, rate: Rate, *, clock: Clock = time.monotonic, max_keys: int = 50_000):
        self.rate = rate
        self.clock = clock
        self.max_keys = max_keys
        #: key -> the time at which its bucket is full again ("TAT"), least recent first.
        self._tat: OrderedDict[str, float] = OrderedDict()

    def hit(self, key: str) -> float:
        """Count a request under ``key`` if it is allowed and return 0; otherwise count
        nothing and return the seconds to wait."""
        now = self.clock()
        self._forget_expired(now)
        tat = max(self._tat.pop(key, now), now)
        # The burst may run ahead of the steady rate by up to period - interval seconds.
        wait = tat - (self.rate.period - self.rate.interval) - now
        if wait > ROUNDING:
            self._tat[key] = tat
            return wait
        self._tat[key] = tat + self.rate.interval
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
        return 0.0

    def refund(self, key: str) -> None:
        """Take back one request counted under ``key`` (one that turned out not to count)."""
        tat = self._tat.get(key)
        if tat is None:
            return
        if tat - self.rate.interval <= self.clock():
            del self._tat[key]
        else:
            self._tat[key] = tat - self.rate.interval

    def __len__(self) -> int:
        return len(self._tat)

    def _forget_expired(self, now: float) -> None:
        # Keys are kept in the order they were last hit, so the expired ones gather at the
        # front: amortised O(1) per hit, no sweep of the whole table.
        while self._tat:
            key, tat = next(iter(self._tat.items()))
            if tat > now:
                return
            del self._tat[key]


@functools.lru_cache(maxsize=4096)
def client_key(host: str | None) -> str:
    """The unit a client controls: its IPv4 address, or the /64 of its IPv6 address
    (one host is routinely given a whole /64, so counting single IPv6 addresses would
    let it start a fresh burst from each).

    Cached: it runs on every API request, and parsing the address was a few percent of
    a publish's CPU; the clients of one server are few."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One authentication attempt from ``address``; ``wait`` > 0: refused unchecked."""

    address: str
    secret: str
    wait: float
    #: Counted as a failure in advance (taken back if it succeeds).
    counted: bool


class FailureThrottle:
    """Slow down guessing of tokens: failed authentications per client address.

    After a burst of ``rate.count`` failures from one address, further attempts from it
    are refused (429) without being checked, one allowed again every ``rate.interval``
    seconds. An attempt is counted as a failure *before* it is checked and taken back if
    it succeeds: counted afterwards, a guesser sending many at once would have them all
    checked before the first failure was recorded. So successes never count.

    A legitimate client at the same address (behind the same NAT or proxy as the one who
    guesses) is not locked out with them: a secret that has succeeded from that address
    within ``remember`` seconds is still checked and served while the address is
    throttled. (This is the "device cookie" defence OWASP recommends against lockouts.)
    A secret that was never used from there waits like a guess: answering it at once
    would tell a guesser which of their guesses is right, which is all a throttle
    exists to prevent. Only a keyed digest of each secret is kept, in memory.
    """

    def __init__(
        self,
        rate: Rate | None,
        *,
        clock: Clock = time.monotonic,
        remember: float = 86400.0,
        max_known: int = 10_000,
    ) -> None:
        self.failures = RateLimiter(rate, clock=clock) if rate else None
        self.clock = clock
        self.remember = remember
        self.max_known = max_known
        self._digest_key = secrets.token_bytes(32)
        #: (address, digest of secret) -> last success, least recent first.
        self._known: OrderedDict[str, float] = OrderedDict()

    def attempt(self, address: str, secret: str) -> Attempt:
        """Start an attempt with ``secret`` from ``address``; end it with ``succeeded`` or
        ``failed`` unless its ``wait`` says it is refused."""
        if self.failures is None or self._known_at(address, secret):
            return Attempt(address, secret, wait=0.0, counted=False)
        wait = self.failures.hit(address)
        return Attempt(address, secret, wait=wait, counted=not wait)

    def succeeded(self, attempt: Attempt) -> None:
        if self.failures is None:
            return
        if attempt.counted:
            self.failures.refund(attempt.address)
        key = self._key(attempt.address, attempt.secret)
        self._known.pop(key, None)
        self._known[key] = self.clock()
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)

    def failed(self, attempt: Attempt) -> None:
        """A secret that worked here before and fails now (a rotated key) counts too."""
        if self.failures is not None and not attempt.counted:
            self._known.pop(self._key(attempt.address, attempt.secret), None)
            self.failures.hit(attempt.address)

    def _known_at(self, address: str, secret: str) -> bool:
        seen = self._known.get(self._key(address, secret))
        return seen is not None and self.clock() - seen <= self.remember

    def _key(self, address: str, secret: str) -> str:
        digest = hashlib.blake2b(secret.encode(), key=self._digest_key, digest_size=16)
        return f"{address} {digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class EndpointRate:
    """An endpoint's rate limit with its GCRA state (``tat``, kept in its row).

    ``rate`` deliveries a second, one every ``interval`` seconds, and after a quiet spell
    up to ``burst`` at once: a delivery may go while ``tat`` (the moment the endpoint
    would be idle again, had every delivery so far gone out at the steady rate) is no
    more than ``(burst - 1) * interval`` ahead of now, and each one moves ``tat`` on by
    ``interval``. So any one second holds at most ``rate + burst - 1`` deliveries (at an
    integer rate; ``burst`` more than the rate allows on average, over any stretch).
    """

    rate: float
    burst: int = 1
    #: None: never limited yet, the same as a moment long past.
    tat: float | None = None

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def tolerance(self) -> float:
        """How far ``tat`` may run ahead of now with a delivery still allowed."""
        return (self.burst - 1) * self.interval

    def allowance(self, now: float) -> int:
        """How many deliveries may go at ``now``, at once."""
        ahead = max(self.tat if self.tat is not None else now, now) - now
        room = math.floor((self.tolerance - ahead + ROUNDING) / self.interval) + 1
        return max(0, min(self.burst, room))

    def take(self, now: float, count: int) -> EndpointRate:
        """The state once ``count`` deliveries went at ``now`` (within the allowance)."""
        start = max(self.tat if self.tat is not None else now, now)
        return EndpointRate(self.rate, self.burst, start + count * self.interval)

    def opens_at(self) -> float | None:
        """The first moment a delivery is allowed (None: it is already, at any time)."""
        if self.tat is None:
            return None
        return self.tat - self.tolerance
