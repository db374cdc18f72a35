"""The store's records: decoded once from their rows, and no secret in their repr (a
log line or a traceback that shows a record shows no key)."""

from __future__ import annotations

from typing import Any

from hookline.store.records import App, Delivery, Endpoint, Job, Probe

SECRET = "s3cr3t-value"


def _endpoint_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": "ep_1",
        "app_id": "app_1",
        "url": "https://example.com/hook",
        "event_types": '["order_completed"]',
        "timeout": 10,
        "ordered": 1,
        "max_in_flight": None,
        "enabled": 0,
        "disabled_reason": "disabled through the API",
        "failing_since": None,
        "operational": 0,
        "client_cert": None,
        "key_switch_at": None,
        "rate_limit": None,
        "rate_limit_burst": 1,
        "pace": 0,
        "pause_until": 50.0,
        "created_at": 1,
        "updated_at": 2,
    }
    return row | changes


def test_an_endpoint_row_is_decoded_once() -> None:
    endpoint = Endpoint.from_row(
        _endpoint_row(), headers={}, verification_key=None, next_key=None, now=100.0
    )
    assert endpoint.event_types == ("order_completed",)
    assert (endpoint.ordered, endpoint.enabled, endpoint.operational) == (True, False, False)
    assert endpoint.paused_until is None, "a pause that has passed is not shown"
    paused = Endpoint.from_row(
        _endpoint_row(), headers={}, verification_key=None, next_key=None, now=10.0
    )
    assert paused.paused_until == 50.0


def test_no_secret_in_a_records_repr() -> None:
    app = App.from_row(
        {
            "id": "app_1",
            "name": "shop",
            "created_at": 1,
            "operator_url": None,
            "key_switch_at": None,
            "api_key_hash": SECRET,
        },
        SECRET,
        SECRET,
    )
    endpoint = Endpoint.from_row(
        _endpoint_row(), headers={"X-Token": "***"}, verification_key=SECRET, next_key=SECRET, now=0
    )
    probe = Probe(
        id="ep_1",
        app_id="app_1",
        url="https://example.com/hook",
        timeout=10.0,
        event_types=("*",),
        keys=(SECRET,),
        headers=(("Authorization", SECRET),),
        client_cert=None,
        client_key=SECRET,
        version=2.0,
    )
    job = Job(1, "t", 0, "ep_1", "u", "u", "app_1", "order_completed", "e", "{}",
              "https://example.com/hook", 10.0, (SECRET,), headers=(("X-Key", SECRET),),
              client_key=SECRET)  # fmt: skip
    for record in (app, endpoint, probe, job):
        assert SECRET not in repr(record)
        assert "app_1" in repr(record)


def test_a_delivery_listed_without_its_attempts_omits_none() -> None:
    row = {
        "id": 7,
        "event_id": "e1",
        "app_id": "app_1",
        "endpoint_id": "ep_1",
        "user_id": "u1",
        "event_type": "order_completed",
        "token": "t",
        "status": "failed",
        "attempts": 30,
        "next_attempt_at": None,
        "last_status_code": 500,
        "last_error": "answered 500",
        "created_at": 1,
        "updated_at": 2,
    }
    assert Delivery.from_row(row).attempts_omitted == 0
    assert Delivery.from_row(row, ()).attempts_omitted == 30
