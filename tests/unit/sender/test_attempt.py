"""One attempt's pure parts: the signed request, Retry-After, and the verdict on an answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from email.utils import formatdate

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.config import RetryPolicy
from hookline.sender.attempt import build_request, judge, parse_retry_after
from hookline.store.records import Job

NOW = 1_700_000_000.0
POLICY = RetryPolicy(schedule=(0, 10, 100), jitter=0.0, max_retry_after=60)
JOB = Job(
    delivery_id=1,
    token="t" * 48,
    attempts=0,
    endpoint_id="ep_1",
    lane="store-1",
    user_id="store-1",
    app_id="app_1",
    event_type="order_completed",
    event_id="evt_1",
    data='{"id":1}',
    url="https://hooks.example.com/",
    timeout=10.0,
    keys=("key-1",),
)


def _judge(status: int | None, *, attempts: int = 0, error: str | None = None, retry_after=None):  # type: ignore[no-untyped-def]
    job = replace(JOB, attempts=attempts)
    return judge(job, POLICY, NOW, status, 12.3456, "body", error, retry_after)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_delivers(status: int) -> None:
    result = _judge(status)
    assert (result.outcome, result.retry_at, result.error) == ("delivered", None, None)
    assert result.status_code == status
    assert result.latency_ms == 12.346


@pytest.mark.parametrize("attempts", [0, 1, 2])
def test_410_is_gone_at_any_attempt(attempts: int) -> None:
    result = _judge(410, attempts=attempts)
    assert (result.outcome, result.retry_at) == ("gone", None)


@pytest.mark.parametrize("status", [400, 404, 500, 502])
def test_other_answers_retry_on_the_schedule(status: int) -> None:
    result = _judge(status)
    assert result.outcome == "retry"
    assert result.retry_at == NOW + 10  # schedule[1], no jitter
    assert result.error == f"answered {status}"
    assert result.counted and result.throttle_for is None


def test_a_retry_also_has_a_quick_time_for_an_endpoint_that_answers_others() -> None:
    # POLICY's quick delays are the default 0.5, 1, 2, 5 s, with no jitter.
    first = _judge(500)
    assert first.quick_retry_at == NOW + 0.5
    assert first.answered_since == NOW - POLICY.answered_window
    assert _judge(500, attempts=1).quick_retry_at == NOW + 1
    # Since its previous attempt, when it had one.
    later = judge(
        replace(JOB, attempts=1, last_attempt_at=NOW - 3), POLICY, NOW, 500, 1, "", None, None
    )
    assert later.answered_since == NOW - 3
    # Never later than the schedule, and Retry-After still counts.
    short = RetryPolicy(schedule=(0, 0.5, 100), jitter=0.0, quick=(1, 2, 5))
    assert judge(JOB, short, NOW, 500, 1, "", None, None).quick_retry_at == NOW + 0.5
    assert _judge(500, retry_after=30).quick_retry_at == NOW + 30


@pytest.mark.parametrize("status", [429, 503])
def test_slow_down_answers_pace_the_endpoint_and_use_up_no_attempt(status: int) -> None:
    for attempts in (0, 1, 2):  # even past the last attempt: it never fails for this
        result = _judge(status, attempts=attempts)
        assert (result.outcome, result.retry_at, result.quick_retry_at) == ("retry", NOW, None)
        assert result.throttle_for == 0.0 and not result.counted
        assert result.error == f"answered {status}"
    asked = _judge(status, retry_after=30)
    assert (asked.throttle_for, asked.retry_at) == (30.0, NOW + 30)
    assert _judge(status, retry_after=86400).throttle_for == 60  # bounded


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_failures(status: int) -> None:
    result = _judge(status)
    assert result.outcome == "retry"
    assert "redirects are not followed" in (result.error or "")


def test_no_answer_retries_with_its_error() -> None:
    result = _judge(None, error="no answer within the endpoint's timeout of 10 s")
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error == "no answer within the endpoint's timeout of 10 s"


def test_the_next_delay_follows_the_attempts_made() -> None:
    assert _judge(500, attempts=1).retry_at == NOW + 100


def test_after_the_last_attempt_the_delivery_fails() -> None:
    result = _judge(500, attempts=2)
    assert (result.outcome, result.retry_at) == ("failed", None)
    assert result.error == "answered 500"


def test_retry_after_lengthens_the_delay_within_its_bound() -> None:
    assert _judge(500, retry_after=30).retry_at == NOW + 30
    assert _judge(500, retry_after=3).retry_at == NOW + 10  # never shortens
    assert _judge(500, retry_after=86400).retry_at == NOW + 60  # bounded


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),  # a date in the past: at once
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\u00b2", None),  # superscript two: isdigit(), but not a number
        ("\u0661\u0662", None),  # Arabic-Indic digits
        ("Sun, 99 Foo 9999 99:99:99 GMT", None),
        ("9" * 400, float("9" * 400)),  # huge but valid; the policy bounds it
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@given(st.text())
def test_parse_retry_after_never_raises(header: str) -> None:
    seconds = parse_retry_after(header, NOW)
    assert seconds is None or seconds >= 0


def test_the_request_is_signed_for_its_own_moment() -> None:
    body, headers = build_request(JOB, NOW)
    envelope = orjson.loads(body)
    assert envelope == {
        "webhook_id": "ep_1",
        "event_type": "order_completed",
        "timestamp": "2023-11-14T22:13:20",
        "token": JOB.token,
        "event_id": "evt_1",
        "user_id": "store-1",
        "data": {"id": 1},
    }
    message = (envelope["timestamp"] + envelope["token"]).encode()
    expected = base64.b64encode(hmac.new(b"key-1", message, hashlib.sha256).digest()).decode()
    assert headers["X-Selz-Signature"] == expected
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert headers["Content-Type"] == "application/json"

    later_body, later = build_request(JOB, NOW + 5)
    assert orjson.loads(later_body)["token"] == JOB.token
    assert later["X-Selz-Signature"] != headers["X-Selz-Signature"]
    assert later["webhook-signature"] != headers["webhook-signature"]


def test_every_key_of_a_rotation_signs_the_standard_header() -> None:
    _, headers = build_request(replace(JOB, keys=("new", "old")), NOW)
    assert len(headers["webhook-signature"].split()) == 2
    _, single = build_request(replace(JOB, keys=("new",)), NOW)
    assert headers["X-Selz-Signature"] == single["X-Selz-Signature"]


def test_the_events_trace_context_goes_on_as_traceparent() -> None:
    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    _, headers = build_request(replace(JOB, traceparent=given), NOW)
    assert headers["traceparent"] == given
    _, headers = build_request(JOB, NOW)
    assert "traceparent" not in {name.lower() for name in headers}
