"""What ``hookline serve`` sends, and to whom: every event type, signed, fanned out right."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import Counter
from typing import Any

import pytest

from hookline.events import EVENT_TYPES
from tests.support.eventually import eventually
from tests.support.hookline_proc import Api
from tests.support.recorder import Hit, Recorder
from tests.support.seed_receiver import SeedReceiver, node_available


def selz_signature(key: str, hit: Hit) -> str:
    """Computed here from the seed's description, not with hookline's own signing code."""
    message = (hit.json["timestamp"] + hit.json["token"]).encode("ascii")
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


@pytest.mark.skipif(not node_available(), reason="node is not installed")
async def test_every_event_type_is_accepted_by_the_seed_receiver(api: Api) -> None:
    app = await api.create_app("seed-shop")
    await api.install(app["id"], "store-1")
    with SeedReceiver(key=app["verification_key"]) as seed:
        await api.create_endpoint(app["id"], seed.url, ["*"])
        for seq, event_type in enumerate(EVENT_TYPES):
            data = {"id": f"{event_type}-1", "seq": seq}
            await api.publish(event_type, "store-1", data, event_id=f"evt-{seq}")
        await eventually(
            lambda: len(seed.requests()) >= len(EVENT_TYPES),
            message=lambda: f"19 requests at the seed receiver, have {seed.verdicts()}",
        )
        rows = await api.settled(app["id"], len(EVENT_TYPES))
        requests = seed.requests()

    assert [r.verdict for r in requests] == ["accepted"] * len(EVENT_TYPES)
    assert [r.json["event_type"] for r in requests] == list(EVENT_TYPES)
    for seq, request in enumerate(requests):
        body = request.json
        assert body["event_id"] == f"evt-{seq}"
        assert body["user_id"] == "store-1"
        assert body["data"] == {"id": f"{EVENT_TYPES[seq]}-1", "seq": seq}
        assert len(body["token"]) == 48
        assert request.headers["content-type"] == "application/json"
    assert {r["status"] for r in rows} == {"delivered"}
    assert all(len(r["attempt_log"]) == 1 for r in rows)


async def test_fan_out_follows_installations_and_filters(api: Api, recorder: Recorder) -> None:
    shop = await api.create_app("shop")
    mail = await api.create_app("mail")
    other = await api.create_app("not-installed")
    for app, users in ((shop, ["alice", "bob"]), (mail, ["alice"]), (other, ["carol"])):
        for user in users:
            await api.install(app["id"], user)
    orders = ["order_completed", "order_payment_succeeded"]
    await api.create_endpoint(shop["id"], recorder.url("/shop-all"), ["*"])
    await api.create_endpoint(shop["id"], recorder.url("/shop-orders"), orders)
    await api.create_endpoint(mail["id"], recorder.url("/mail-products"), ["product_created"])
    await api.create_endpoint(other["id"], recorder.url("/other-all"), ["*"])

    published = [
        ("alice", "order_completed"),
        ("alice", "product_created"),
        ("alice", "customer_updated"),
        ("bob", "order_payment_succeeded"),
        ("bob", "product_created"),
        ("dave", "order_completed"),  # installed nothing
    ]
    fan_out = []
    for n, (user, event_type) in enumerate(published):
        reply = await api.publish(event_type, user, {"id": n}, event_id=f"evt-{n}")
        fan_out.append(reply["deliveries"])

    # (path, event_id) pairs that must arrive, and nothing else.
    expected = {
        ("/shop-all", "evt-0"), ("/shop-orders", "evt-0"),
        ("/shop-all", "evt-1"), ("/mail-products", "evt-1"),
        ("/shop-all", "evt-2"),
        ("/shop-all", "evt-3"), ("/shop-orders", "evt-3"),
        ("/shop-all", "evt-4"),
    }  # fmt: skip
    assert fan_out == [2, 2, 1, 2, 1, 0]
    await recorder.wait_for(lambda: len(recorder.hits()) >= len(expected))
    await api.settled(shop["id"], 7)
    await api.settled(mail["id"], 1)
    assert await api.deliveries(other["id"]) == []

    hits = recorder.hits()
    assert Counter((h.path, h.event_id) for h in hits) == Counter(expected)
    keys = {"/shop": shop["verification_key"], "/mail": mail["verification_key"]}
    for hit in hits:
        own = keys[hit.path[:5]]
        foreign = next(k for k in keys.values() if k != own)
        assert hit.headers["X-Selz-Signature"] == selz_signature(own, hit)
        assert hit.headers["X-Selz-Signature"] != selz_signature(foreign, hit)
        assert hit.json["webhook_id"] != ""
    _webhook_ids_name_their_endpoint(hits, await api.endpoints(shop["id"]))


def _webhook_ids_name_their_endpoint(hits: list[Hit], endpoints: list[dict[str, Any]]) -> None:
    by_url = {e["url"].rsplit("/", 1)[1]: e["id"] for e in endpoints}
    for hit in hits:
        name = hit.path.lstrip("/")
        if name in by_url:
            assert hit.json["webhook_id"] == by_url[name]


async def test_metrics_and_health_count_the_delivery_processes_attempts(
    api: Api, recorder: Recorder
) -> None:
    # serve delivers in a child process; its attempts are counted by the API process.
    url = recorder.script("/hook")
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    await api.create_endpoint(app["id"], url, ["*"])
    for n in range(3):
        await api.publish("order_completed", "store-1", {"id": n}, event_id=f"evt-{n}")
    await api.settled(app["id"], 3)
    metrics = ""

    async def counted() -> bool:
        nonlocal metrics
        reply = await api.call("GET", "/metrics")
        metrics = reply.body
        return 'hookline_attempts_total{outcome="delivered"} 3.0' in metrics

    await eventually(counted, message=lambda: f"3 delivered attempts in\n{metrics}")
    assert "hookline_attempt_latency_seconds_count 3.0" in metrics
    health = await api.expect(200, "GET", "/healthz")
    assert health["delivering"] is True
