"""RetryPolicy: the schedule, its jitter, and how Retry-After bends it."""

from __future__ import annotations

import pytest

from hookline.config import DEFAULT_SCHEDULE, EngineSettings, Limits, RetryPolicy
from hookline.exceptions import ConfigError


def test_the_default_schedule_is_the_documented_one() -> None:
    assert DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    policy = RetryPolicy()
    # Eight attempts, then it gives up.
    assert policy.next_delay(7) is not None and policy.next_delay(8) is None


def test_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(schedule=(0, 100), jitter=0.1)
    delays = [policy.next_delay(1) for _ in range(2000)]
    assert all(d is not None and 90 <= d <= 110 for d in delays)
    # Spread out, not one fixed value.
    assert max(delays) - min(delays) > 10  # type: ignore[type-var,operator]


def test_an_immediate_attempt_has_no_jitter() -> None:
    policy = RetryPolicy(schedule=(0, 0, 5), jitter=0.5)
    assert {policy.next_delay(0) for _ in range(100)} == {0.0}
    assert {policy.next_delay(1) for _ in range(100)} == {0.0}


def test_no_delay_after_the_last_attempt() -> None:
    policy = RetryPolicy(schedule=(0, 1, 2))
    assert policy.next_delay(3) is None
    assert policy.next_delay(10) is None


def test_retry_after_lengthens_but_never_shortens() -> None:
    policy = RetryPolicy(schedule=(0, 100), jitter=0.1, max_retry_after=3600)
    assert policy.next_delay(1, retry_after=500) == 500
    for _ in range(200):
        delay = policy.next_delay(1, retry_after=1)
        assert delay is not None and 90 <= delay <= 110


def test_retry_after_is_bounded() -> None:
    policy = RetryPolicy(schedule=(0, 1), jitter=0.0, max_retry_after=3600)
    assert policy.next_delay(1, retry_after=10**9) == 3600
    # The bound caps what the endpoint asks for, not the schedule itself.
    long = RetryPolicy(schedule=(0, 7200), jitter=0.0, max_retry_after=3600)
    assert long.next_delay(1, retry_after=10**9) == 7200


def test_retry_after_does_not_extend_the_schedule() -> None:
    policy = RetryPolicy(schedule=(0, 1))
    assert policy.next_delay(2, retry_after=5) is None


def test_parse() -> None:
    assert RetryPolicy.parse("0,0.2,0.5").schedule == (0, 0.2, 0.5)
    assert RetryPolicy.parse(" 0 , 5 ,").schedule == (0, 5)


@pytest.mark.parametrize("text", ["", ",", "0,soon", "0,-1", "1;2", "0,inf", "nan"])
def test_parse_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy.parse(text)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_is_a_fraction(jitter: float) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(jitter=jitter)


def test_settings_from_env() -> None:
    settings = EngineSettings.from_env(
        {
            "HOOKLINE_RETRY_SCHEDULE": "0,0.2,0.5",
            "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
            "HOOKLINE_ENDPOINT_MAX_IN_FLIGHT": "3",
            "HOOKLINE_LEASE_MARGIN": "1",
            "HOOKLINE_POLL_INTERVAL": "0.05",
        }
    )
    assert settings.retry.schedule == (0, 0.2, 0.5)
    assert settings.allow_private_targets is True
    assert settings.endpoint_max_in_flight == 3
    assert settings.lease_margin == 1
    assert settings.poll_interval == 0.05
    assert EngineSettings.from_env({}).allow_private_targets is False


@pytest.mark.parametrize(
    "env",
    [
        {"HOOKLINE_ALLOW_PRIVATE_TARGETS": "maybe"},
        {"HOOKLINE_LEASE_MARGIN": "-1"},
        {"HOOKLINE_POLL_INTERVAL": "fast"},
        {"HOOKLINE_RETRY_SCHEDULE": "x"},
        {"HOOKLINE_CONCURRENCY": "inf"},
        {"HOOKLINE_CONCURRENCY": "0"},
        {"HOOKLINE_RETENTION_DAYS": "nan"},
        {"HOOKLINE_PROBE_TIMEOUT": "0"},  # aiohttp would wait for a probe forever
        {"HOOKLINE_POLL_INTERVAL": "0"},
        {"HOOKLINE_HEALTH_INTERVAL": "0"},
        {"HOOKLINE_CA_BUNDLE": "/nonexistent/cas.pem"},
        {"HOOKLINE_CA_BUNDLE": __file__},  # a file, but no certificate in it
    ],
)
def test_settings_refuse_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        EngineSettings.from_env(env)


def test_an_app_never_gets_more_than_half_the_slots() -> None:
    assert EngineSettings().app_cap == 128
    assert EngineSettings.from_env({"HOOKLINE_APP_MAX_IN_FLIGHT": "40"}).app_cap == 40
    assert EngineSettings(concurrency=64).app_cap == 32
    assert EngineSettings(concurrency=64, app_max_in_flight=1000).app_cap == 32
    assert EngineSettings(concurrency=1).app_cap == 1


def test_limits_from_env() -> None:
    assert Limits.from_env({}) == Limits()
    limits = Limits.from_env(
        {
            "HOOKLINE_MAX_ENDPOINTS_PER_APP": "7",
            "HOOKLINE_MAX_IN_FLIGHT": "9",
            "HOOKLINE_MAX_TIMEOUT": "12.5",
            "HOOKLINE_MAX_DELIVERIES_PER_PUBLISH": "1000",
            "HOOKLINE_ATTEMPT_LOG_HEAD": "2",
            "HOOKLINE_ATTEMPT_LOG_TAIL": "3",
        }
    )
    assert limits == Limits(7, 9, 12.5, 1000, 2, 3)
    with pytest.raises(ConfigError, match="HOOKLINE_MAX_TIMEOUT"):
        Limits.from_env({"HOOKLINE_MAX_TIMEOUT": "long"})
    # A longest timeout of 0 would be no timeout at all (aiohttp's reading of 0), and a
    # lease that ends while the attempt still waits.
    with pytest.raises(ConfigError, match="HOOKLINE_MAX_TIMEOUT='0' must be more than 0"):
        Limits.from_env({"HOOKLINE_MAX_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match="max_timeout must be more than 0"):
        Limits(max_timeout=0)
    with pytest.raises(ConfigError, match="probe_timeout must be more than 0"):
        EngineSettings(probe_timeout=0)
    # Zero endpoints per app is refused, not quietly read as one.
    with pytest.raises(ConfigError, match="HOOKLINE_MAX_ENDPOINTS_PER_APP='0' must be at least 1"):
        Limits.from_env({"HOOKLINE_MAX_ENDPOINTS_PER_APP": "0"})
