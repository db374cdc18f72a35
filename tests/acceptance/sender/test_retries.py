"""Failures, retries and their log, through the real ``hookline serve``.

The sender runs with a fast schedule (``0,0.2,0.5``: three attempts) unless a test
parametrises ``serve_env``. Only lower bounds on delays are asserted (the sender must
not retry *before* it was asked to); a slow machine cannot make those fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

import pytest

from tests.support.eventually import eventually
from tests.support.hookline_proc import Api
from tests.support.recorder import Answer, Hit, Recorder, redirect


async def _one_endpoint(api: Api, url: str, **options: Any) -> dict[str, Any]:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    app["endpoint"] = await api.create_endpoint(app["id"], url, ["*"], **options)
    return app


def _check_signatures(key: str, hit: Hit) -> None:
    body = hit.json
    message = (body["timestamp"] + body["token"]).encode("ascii")
    selz = base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()
    assert hit.headers["X-Selz-Signature"] == selz
    signed = b"%s.%s.%s" % (
        hit.headers["webhook-id"].encode(),
        hit.headers["webhook-timestamp"].encode(),
        hit.body,
    )
    standard = base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest()).decode()
    assert hit.headers["webhook-signature"].split() == [f"v1,{standard}"]


def _when(attempt: dict[str, Any]) -> float:
    return datetime.fromisoformat(attempt["attempted_at"]).timestamp()


@pytest.mark.parametrize("serve_env", [{"HOOKLINE_RETRY_SCHEDULE": "0,1.2,1.2,1.2"}])
async def test_failing_endpoint_is_retried_until_it_answers(api: Api, recorder: Recorder) -> None:
    # Retries 1.2 s (±10 %) apart always fall in different seconds, so every attempt
    # must carry a timestamp, and therefore signatures, of its own.
    url = recorder.script("/flaky", [Answer(500), Answer(502, body="busy")], then=Answer(204))
    app = await _one_endpoint(api, url)
    await api.publish("order_completed", "store-1", {"id": 7}, event_id="evt-7")

    (delivery,) = await api.settled(app["id"], 1)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 502, 204]
    assert [a["outcome"] for a in log] == ["retry", "retry", "delivered"]
    assert log[1]["response_excerpt"] == "busy"
    assert [a["error"] for a in log] == ["answered 500", "answered 502", None]
    assert _when(log[1]) - _when(log[0]) >= 1.2 * 0.9

    hits = recorder.hits("/flaky")
    assert len(hits) == 3
    assert {h.json["token"] for h in hits} == {delivery["token"]}
    assert {h.event_id for h in hits} == {"evt-7"}
    assert {h.headers["webhook-id"] for h in hits} == {"evt-7"}
    assert len({h.json["timestamp"] for h in hits}) == 3
    assert len({h.headers["X-Selz-Signature"] for h in hits}) == 3
    assert len({h.headers["webhook-signature"] for h in hits}) == 3
    for hit in hits:
        _check_signatures(app["verification_key"], hit)


async def test_an_answer_later_than_the_timeout_is_a_timeout(api: Api, recorder: Recorder) -> None:
    url = recorder.script("/slow", [Answer(sleep=20)], then=Answer(200))
    app = await _one_endpoint(api, url, timeout=0.5)
    await api.publish("order_completed", "store-1", {"id": 1})

    (delivery,) = await api.settled(app["id"], 1)
    first, second = delivery["attempt_log"]
    assert first["outcome"] == "retry"
    assert first["status_code"] is None
    assert "timeout" in first["error"]
    assert second["outcome"] == "delivered"
    # The sender hung up: the slow request was cancelled, not answered.
    slow = recorder.hits("/slow")[0]
    assert slow.cancelled and slow.status is None


async def test_redirects_are_not_followed(api: Api, recorder: Recorder) -> None:
    target = recorder.url("/new-home")
    url = recorder.script("/moved", then=redirect(target, 301))
    app = await _one_endpoint(api, url)
    await api.publish("order_completed", "store-1", {"id": 1})

    (delivery,) = await api.settled(app["id"], 1)
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [301, 301, 301]
    assert all("redirect" in a["error"] for a in delivery["attempt_log"])
    assert len(recorder.hits("/moved")) == 3
    assert recorder.hits("/new-home") == []


async def test_gone_disables_the_endpoint(api: Api, recorder: Recorder) -> None:
    app = await _one_endpoint(api, recorder.script("/gone", then=Answer(410)))
    healthy = await api.create_endpoint(app["id"], recorder.url("/healthy"), ["*"])
    first = await api.publish("order_completed", "store-1", {"id": 1})
    assert first["deliveries"] == 2

    rows = await api.settled(app["id"], 2)
    gone = next(r for r in rows if r["endpoint_id"] == app["endpoint"]["id"])
    assert gone["status"] == "failed"
    assert [(a["status_code"], a["outcome"]) for a in gone["attempt_log"]] == [(410, "gone")]
    endpoint = next(e for e in await api.endpoints(app["id"]) if e["id"] == gone["endpoint_id"])
    assert endpoint["enabled"] is False
    assert "410" in endpoint["disabled_reason"]

    later = await api.publish("order_completed", "store-1", {"id": 2})
    assert later["deliveries"] == 1  # only the healthy endpoint
    rows = await api.settled(app["id"], 3)
    assert [r["endpoint_id"] for r in rows[2:]] == [healthy["id"]]
    await recorder.wait_for(lambda: len(recorder.hits("/healthy")) == 2)
    assert len(recorder.hits("/gone")) == 1


async def test_retry_after_is_honoured(api: Api, recorder: Recorder) -> None:
    busy = Answer(503, headers={"Retry-After": "2"})
    app = await _one_endpoint(api, recorder.script("/busy", [busy], then=Answer(200)))
    await api.publish("order_completed", "store-1", {"id": 1})

    (delivery,) = await api.settled(app["id"], 1)
    first, second = delivery["attempt_log"]
    assert (first["status_code"], second["status_code"]) == (503, 200)
    assert delivery["attempts"] == 1  # the 503 asked for less: no attempt used up
    # The schedule alone would retry after 0.2 s; the endpoint asked for 2 s.
    assert _when(second) - _when(first) >= 1.9
    hits = recorder.hits("/busy")
    assert hits[1].started - hits[0].started >= 1.9


async def test_retry_after_is_bounded(api: Api, recorder: Recorder) -> None:
    # A day asked for; the sender waits at most an hour (RetryPolicy.max_retry_after).
    busy = Answer(503, headers={"Retry-After": "86400"})
    app = await _one_endpoint(api, recorder.script("/busy", then=busy))
    await api.publish("order_completed", "store-1", {"id": 1})

    await recorder.wait_for(lambda: len(recorder.hits("/busy")) == 1)
    delivery: dict[str, Any] = {}

    async def scheduled() -> bool:
        nonlocal delivery
        (delivery,) = await api.deliveries(app["id"])
        return len(delivery["attempt_log"]) == 1

    await eventually(scheduled, message="the first attempt to be recorded")
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0  # a 503 asks for less; it uses up no attempt
    wait = datetime.fromisoformat(delivery["next_attempt_at"]).timestamp() - _when(
        delivery["attempt_log"][0]
    )
    assert 3600 - 1 <= wait <= 3600 + 1


async def test_delivery_fails_once_the_schedule_runs_out(api: Api, recorder: Recorder) -> None:
    app = await _one_endpoint(api, recorder.script("/down", then=Answer(500)))
    await api.publish("order_completed", "store-1", {"id": 1})

    (delivery,) = await api.settled(app["id"], 1)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3  # the schedule 0,0.2,0.5 has three entries
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "retry", "failed"]
    assert delivery["next_attempt_at"] is None
    assert delivery["last_status_code"] == 500
    assert len(recorder.hits("/down")) == 3
