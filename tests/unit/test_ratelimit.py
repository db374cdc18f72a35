"""GCRA (in memory, and an endpoint's as the store keeps it) and the failed-authentication
throttle, on a clock the test turns."""

from __future__ import annotations

import math
import random

import pytest

from hookline.config import RateLimits
from hookline.exceptions import ConfigError
from hookline.ratelimit import EndpointRate, FailureThrottle, Rate, RateLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(5, 10), clock=clock)
    assert [limiter.hit("a") for _ in range(5)] == [0.0] * 5
    assert limiter.hit("a") == pytest.approx(2.0)  # one more every 10/5 s
    clock.now += 1.9
    assert limiter.hit("a") > 0
    clock.now += 0.1
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") == pytest.approx(2.0)
    assert limiter.hit("b") == 0.0  # keys are independent
    clock.now += 10
    assert [limiter.hit("a") for _ in range(5)] == [0.0] * 5  # full again after a period


@pytest.mark.parametrize("start", [0.0, 1000.0, 123456.789, 9876543.21, 1.7e9])
@pytest.mark.parametrize("rate", [Rate(1, 3600), Rate(3, 1), Rate(7, 0.1), Rate(10, 60)])
def test_exactly_the_burst_whatever_the_clock_reads(start: float, rate: Rate) -> None:
    """Float rounding never refuses a request that is on time, nor lets one more in."""
    clock = Clock()
    clock.now = start
    limiter = RateLimiter(rate, clock=clock)
    assert [limiter.hit("a") == 0.0 for _ in range(rate.count + 1)] == [True] * rate.count + [False]
    clock.now += rate.interval
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") == pytest.approx(rate.interval, abs=1e-5)


def test_refused_requests_are_not_counted() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(1, 10), clock=clock)
    assert limiter.hit("a") == 0.0
    for _ in range(100):
        assert limiter.hit("a") > 0
    clock.now += 10
    assert limiter.hit("a") == 0.0


def test_keys_are_bounded_and_expired_ones_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(2, 10), clock=clock, max_keys=100)
    for n in range(1000):
        limiter.hit(f"k{n}")
    assert len(limiter) == 100
    clock.now += 10
    limiter.hit("fresh")
    assert len(limiter) == 1


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/minute", Rate(10, 60)),
        ("5/30", Rate(5, 30)),
        ("5/30s", Rate(5, 30)),
        (" 100/HOUR ", Rate(100, 3600)),
        ("off", None),
    ],
)
def test_rates_parse(text: str, rate: Rate | None) -> None:
    assert Rate.parse("X", text) == rate


@pytest.mark.parametrize(
    "text", ["", "10", "ten/minute", "10/fortnight", "0/minute", "5/0", "5/-1"]
)
def test_bad_rates_say_where_and_how(text: str) -> None:
    with pytest.raises(ConfigError, match=r"HOOKLINE_RATE_TESTS=.*COUNT/PERIOD"):
        RateLimits.from_env({"HOOKLINE_RATE_TESTS": text})


def test_limits_from_the_environment() -> None:
    limits = RateLimits.from_env(
        {"HOOKLINE_RATE_TESTS": "3/second", "HOOKLINE_RATE_RECOVERS": "off"}
    )
    assert limits.tests == Rate(3, 1)
    assert limits.recovers is None
    assert limits.new_endpoints == RateLimits().new_endpoints


def test_client_key_takes_an_ipv6_clients_whole_64() -> None:
    assert client_key("127.0.0.1") == "127.0.0.1"
    assert client_key("::ffff:127.0.0.1") == "127.0.0.1"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key(None) == "unknown"


def test_only_failures_count_and_a_key_proven_there_still_passes() -> None:
    clock = Clock()
    throttle = FailureThrottle(Rate(3, 30), clock=clock)
    for _ in range(50):
        attempt = throttle.attempt("1.2.3.4", "good")
        assert attempt.wait == 0.0
        throttle.succeeded(attempt)
    for _ in range(3):
        attempt = throttle.attempt("1.2.3.4", "guess")
        assert attempt.wait == 0.0
        throttle.failed(attempt)
    assert throttle.attempt("1.2.3.4", "guess").wait == pytest.approx(10.0)
    # A secret never used from there waits like a guess: answering it would tell a
    # guesser which guess is right.
    assert throttle.attempt("1.2.3.4", "another").wait == pytest.approx(10.0)
    assert throttle.attempt("1.2.3.4", "good").wait == 0.0
    assert throttle.attempt("5.6.7.8", "guess").wait == 0.0  # other addresses: unaffected
    clock.now += 10
    assert throttle.attempt("1.2.3.4", "guess").wait == 0.0


def test_attempts_count_before_they_are_checked() -> None:
    """Many started at once: only the burst is let through to be checked."""
    throttle = FailureThrottle(Rate(3, 30), clock=Clock())
    started = [throttle.attempt("1.2.3.4", f"guess-{n}") for n in range(10)]
    assert [a.wait == 0.0 for a in started] == [True] * 3 + [False] * 7
    # A success among them is taken back: successes never count.
    throttle.succeeded(started[0])
    assert throttle.attempt("1.2.3.4", "one more").wait == 0.0


def test_a_known_key_that_fails_now_counts_and_is_forgotten() -> None:
    clock = Clock()
    throttle = FailureThrottle(Rate(1, 30), clock=clock)
    throttle.succeeded(throttle.attempt("1.2.3.4", "rotated"))
    throttle.failed(throttle.attempt("1.2.3.4", "rotated"))  # e.g. the key was rotated
    assert throttle.attempt("1.2.3.4", "rotated").wait > 0
    assert throttle.attempt("1.2.3.4", "guess").wait > 0


def test_a_proven_key_is_forgotten_after_a_while() -> None:
    clock = Clock()
    throttle = FailureThrottle(Rate(1, 30), clock=clock, remember=60)
    throttle.succeeded(throttle.attempt("1.2.3.4", "good"))
    clock.now += 61
    throttle.failed(throttle.attempt("1.2.3.4", "guess"))
    assert throttle.attempt("1.2.3.4", "good").wait > 0


def test_no_rate_no_throttle() -> None:
    throttle = FailureThrottle(None)
    for _ in range(100):
        throttle.failed(throttle.attempt("1.2.3.4", "x"))
    assert throttle.attempt("1.2.3.4", "x").wait == 0.0


def test_a_refund_never_goes_below_a_full_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(2, 10), clock=clock)
    limiter.hit("a")
    limiter.refund("a")
    limiter.refund("a")
    limiter.refund("never hit")
    assert [limiter.hit("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(5.0)]


# -- an endpoint's rate limit (GCRA state in its row) ------------------------------------


def test_an_idle_endpoint_allows_its_burst_then_one_per_interval() -> None:
    rate = EndpointRate(10, burst=3)
    assert rate.allowance(1000.0) == 3
    assert rate.opens_at() is None
    rate = rate.take(1000.0, 3)
    assert rate.tat == pytest.approx(1000.3)
    assert rate.allowance(1000.0) == 0
    assert rate.opens_at() == pytest.approx(1000.1)
    assert rate.allowance(1000.0999) == 0
    assert rate.allowance(1000.1) == 1  # exactly on time counts
    assert rate.allowance(1000.25) == 2
    assert rate.allowance(1005.0) == 3  # never more than the burst, however long idle


def test_taking_part_of_the_allowance_keeps_the_rest() -> None:
    rate = EndpointRate(4, burst=4).take(50.0, 1)
    assert rate.allowance(50.0) == 3
    rate = rate.take(50.0, 3)
    assert rate.allowance(50.0) == 0
    assert rate.opens_at() == pytest.approx(50.25)


def test_a_long_idle_endpoint_starts_from_now_not_from_its_old_state() -> None:
    rate = EndpointRate(2, burst=1, tat=10.0)
    assert rate.allowance(100.0) == 1
    assert rate.take(100.0, 1).tat == pytest.approx(100.5)


@pytest.mark.parametrize("start", [0.0, 1000.0, 123456.789, 1.7e9, 2.5e9])
@pytest.mark.parametrize(("per_second", "burst"), [(20, 1), (20, 5), (0.001, 1), (1e4, 1000)])
def test_on_time_claims_are_never_refused_whatever_the_clock_reads(
    start: float, per_second: float, burst: int
) -> None:
    rate = EndpointRate(per_second, burst).take(start, burst)
    for _ in range(50):
        opens = rate.opens_at()
        assert opens is not None
        assert rate.allowance(opens) == 1
        rate = rate.take(opens, 1)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("per_second", "burst"), [(20, 1), (20, 5), (3.5, 2), (200, 40)])
def test_no_second_holds_more_than_the_rate_plus_the_burst_less_one(
    seed: int, per_second: float, burst: int
) -> None:
    """Claims at random moments, each taking what is allowed then (or part of it): any
    window of one second holds at most ``rate + burst - 1`` (rounded up, less one, at a
    rate that is not whole); over a long run the rate is what was asked."""
    chance = random.Random(seed)
    rate, now, taken = EndpointRate(per_second, burst), 1.7e9, []
    while now < 1.7e9 + 30:
        now += chance.choice([0.0, 0.001, 0.01, chance.uniform(0, 0.2), chance.uniform(0, 2)])
        n = rate.allowance(now)
        n = chance.choice([n, n, max(0, n - 1)])
        rate = rate.take(now, n)
        taken += [now] * n
    most = math.ceil(per_second + burst) - 1
    for i, first in enumerate(taken):
        in_window = sum(1 for t in taken[i:] if t < first + 1.0)
        assert in_window <= most, (first, in_window)
    assert len(taken) <= per_second * (taken[-1] - taken[0]) + burst
    # At a steady backlog (claims every 10 ms), the rate is met.
    rate, now, steady = EndpointRate(per_second, burst), 0.0, 0
    for _ in range(1000):
        now += 0.01
        n = rate.allowance(now)
        rate, steady = rate.take(now, n), steady + n
    assert steady >= per_second * 10 * 0.97
