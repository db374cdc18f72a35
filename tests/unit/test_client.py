"""The client's decisions without a network: which exception an answer is, when to retry
and how long to wait. (Everything over real sockets: tests/acceptance/api/test_client.py.)"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline import exceptions as exc
from hookline.client import Retries
from hookline.client import _operations as ops
from hookline.client._http import error_for


def body(code: str, message: str = "it went wrong") -> bytes:
    return f'{{"error": {{"code": "{code}", "message": "{message}"}}}}'.encode()


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "malformed_json", exc.ValidationError),
        (401, "unauthorized", exc.Unauthorized),
        (403, "forbidden", exc.Forbidden),
        (404, "not_found", exc.NotFound),
        (409, "conflict", exc.Conflict),
        (409, "event_conflict", exc.EventConflict),
        (409, "limit_reached", exc.LimitReached),
        (413, "body_too_large", exc.BodyTooLarge),
        (413, "too_large", exc.TooLarge),
        (415, "unsupported_media_type", exc.ValidationError),
        (422, "invalid_request", exc.ValidationError),
        (422, "forbidden_address", exc.ForbiddenAddress),
        (503, "storage_unavailable", exc.Unavailable),
        (500, "storage_error", exc.StorageError),
        (418, "teapot", exc.HooklineError),
    ],
)
def test_an_error_answer_is_the_exception_of_its_status_refined_by_its_code(
    status: int, code: str, expected: type[exc.HooklineError]
) -> None:
    error = error_for(status, None, body(code))
    assert type(error) is expected
    assert (error.status, error.code, error.message) == (status, code, "it went wrong")


def test_retry_after_is_read_from_the_header() -> None:
    limited = error_for(429, "7", body("rate_limited"))
    assert isinstance(limited, exc.RateLimited) and limited.retry_after == 7
    unavailable = error_for(503, "5", body("storage_unavailable"))
    assert isinstance(unavailable, exc.Unavailable) and unavailable.retry_after == 5


def test_an_answer_not_from_hookline_keeps_its_status() -> None:
    error = error_for(502, None, b"<html>Bad Gateway</html>")
    assert isinstance(error, exc.Unavailable) and error.retry_after is None
    assert (error.status, error.code) == (502, "unavailable")
    assert "Bad Gateway" in error.message


@given(
    attempt=st.integers(0, 30),
    retry_after=st.none() | st.floats(0, 10_000),
    backoff=st.floats(0, 5),
    cap=st.floats(0, 60),
)
def test_the_wait_is_bounded_and_honours_retry_after(
    attempt: int, retry_after: float | None, backoff: float, cap: float
) -> None:
    wait = Retries(backoff=backoff, max_backoff=cap).delay(attempt, retry_after)
    assert 0 <= wait <= cap
    assert wait <= max(backoff * 2**attempt, min(retry_after or 0, cap))
    if retry_after:
        assert wait >= min(retry_after, cap)


def test_what_is_sent_again() -> None:
    retries = Retries(attempts=3)
    get = ops.get_app("app_1")
    create = ops.create_app("shop")
    lost = exc.Unavailable("connection reset", sent=True)
    refused = exc.Unavailable("connection refused", sent=False)
    assert retries.allows(get, lost, 0) and retries.allows(get, lost, 1)
    assert not retries.allows(get, lost, 2)  # the third try was the last
    assert not retries.allows(create, lost, 0)  # it may have been created
    assert retries.allows(create, refused, 0)  # it never left
    assert not Retries(attempts=1).allows(get, refused, 0)


def test_which_calls_are_idempotent() -> None:
    safe = [
        ops.publish_event("order_completed", "u", {}),  # the client gives it an event_id
        ops.publish_events([{"event_type": "order_completed", "user_id": "u", "data": {}}]),
        ops.create_installation("app_1", "u"),
        ops.update_endpoint("app_1", "ep_1", enabled=True),
        ops.delete_endpoint("app_1", "ep_1"),
        ops.list_deliveries("app_1"),
    ]
    unsafe = [
        ops.create_app("shop"),
        ops.create_endpoint("app_1", "https://example.com/hooks"),
        ops.rotate_api_key("app_1"),
        ops.rotate_verification_key("app_1"),
        ops.send_test_notification("app_1", "ep_1", "order_completed"),
        ops.retry_delivery("app_1", 7),
    ]
    assert all(call.idempotent for call in safe)
    assert not any(call.idempotent for call in unsafe)
    assert b'"event_id":"evt_' in (safe[0].body or b"")


def test_only_given_fields_are_sent_and_paths_are_quoted() -> None:
    call = ops.update_endpoint("app/1", "ep 1", max_in_flight=None)
    assert call.path == "/api/v1/apps/app%2F1/endpoints/ep%201"
    assert call.body == b'{"max_in_flight":null}'
    listed = ops.list_deliveries("app_1", status="failed", limit=10)
    assert listed.query == {"status": "failed", "limit": "10"}


def test_a_traceparent_is_sent_only_when_given() -> None:
    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = ops.publish_event("order_completed", "u", {}, event_id="e1", traceparent=given)
    assert orjson.loads(traced.body or b"")["traceparent"] == given
    assert b"traceparent" not in (ops.publish_event("order_completed", "u", {}).body or b"")
    batch = ops.publish_events(
        [
            {"event_type": "order_completed", "user_id": "u", "data": {}, "traceparent": given},
            {"event_type": "order_completed", "user_id": "u", "data": {}},
        ]
    )
    sent = orjson.loads(batch.body or b"")["events"]
    assert [e.get("traceparent") for e in sent] == [given, None]


def test_retries_reject_nonsense() -> None:
    with pytest.raises(exc.ConfigError):
        Retries(attempts=0)


def test_the_public_surface_is_there() -> None:
    import hookline.client

    assert all(hasattr(hookline.client, name) for name in hookline.client.__all__)
    assert all(hasattr(hookline, name) for name in hookline.__all__)
