"""Operational webhooks: hookline tells an app's operator_url, in the wire format and
signed with the app's key, when it disables or enables one of the app's endpoints, when
one recovers, and when a delivery fails for good; never about the operator URL itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from hookline.config import EngineSettings, RetryPolicy
from hookline.events import OPERATIONAL_EVENT_TYPES
from hookline.exceptions import Conflict, ValidationError
from hookline.sender import Engine
from hookline.sender.health import PROBE_USER
from hookline.signing import Verifier, selz_signature
from hookline.store import AttemptResult, Job, NewEvent, Store
from hookline.store.operational import delivery_failed
from hookline.store.publishing import announce
from tests.support.eventually import eventually
from tests.support.recorder import Answer, Hit, Recorder

SETTINGS = EngineSettings(
    retry=RetryPolicy(schedule=(0, *([0.05] * 10_000)), jitter=0),
    allow_private_targets=True,
    poll_interval=0.02,
    lease_margin=1,
    disable_after=0.3,
    probe_interval=0.1,
    health_interval=0.05,
)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


class Switch:
    """An endpoint answering ``status``, changeable while the test runs."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __call__(self, hits: list[Hit]) -> Answer:
        return Answer(self.status)


def operational(rec: Recorder, path: str = "/ops") -> list[dict[str, Any]]:
    """The operational events the sink got, probes left out."""
    return [h.json for h in rec.hits(path) if h.json["user_id"] != PROBE_USER]


async def test_the_operator_url_hears_of_an_endpoint_disabled_then_enabled_again(
    database_url: str, recorder: Recorder
) -> None:
    shop = Switch(500)
    recorder.respond("/shop", shop)
    recorder.script("/ops")
    store = await Store.open(database_url)
    engine = Engine(store, SETTINGS)
    try:
        app, _ = await store.create_app("shop", operator_url=recorder.url("/ops"))
        await store.install(app.id, "u1")
        ep = await store.create_endpoint(
            app.id, url=recorder.url("/shop"), event_types=["order_completed"], timeout=2
        )
        await store.publish([NewEvent("e1", "order_completed", "u1", json.dumps({"id": 1}))])
        await engine.start()

        await recorder.wait_for(lambda: len(operational(recorder)) >= 1)
        shop.status = 200
        await recorder.wait_for(lambda: len(operational(recorder)) >= 2)
        await recorder.wait_for(lambda: any(h.json["event_id"] == "e1" for h in _ok(recorder)))

        verifier = Verifier(keys=(app.verification_key,))
        hits = [h for h in recorder.hits("/ops") if h.json["user_id"] != PROBE_USER]
        envelopes = [verifier.verify(h.headers, h.body) for h in hits]
        for hit, envelope in zip(hits, envelopes, strict=True):
            # What a receiver written from the Selz page checks: timestamp + token.
            selz = selz_signature(app.verification_key, envelope.timestamp, envelope.token)
            assert hit.headers["X-Selz-Signature"] == selz
        assert [e.event_type for e in envelopes] == ["endpoint.disabled", "endpoint.enabled"]
        sink = (await store.get_app(app.id)).operator_url
        assert sink == recorder.url("/ops")
        (sink_ep,) = [e for e in await store.list_endpoints(app.id) if e.operational]
        for envelope in envelopes:
            assert envelope.user_id == ep.id, "the endpoint the event is about"
            assert envelope.webhook_id == sink_ep.id
            assert envelope.data["id"] == ep.id and envelope.data["url"] == ep.url
        disabled, enabled = (e.data for e in envelopes)
        assert disabled["reason"] == "failing" and "failing for more than" in disabled["message"]
        assert enabled["failing_since"] == disabled["failing_since"] is not None
        assert len({e.event_id for e in envelopes}) == 2

        # Logged like any delivery of the app.
        async def logged() -> bool:
            rows = await store.list_deliveries(app.id, endpoint_id=sink_ep.id)
            assert {d.event_type for d in rows} == {"endpoint.disabled", "endpoint.enabled"}
            return {d.status for d in rows} == {"delivered"}

        await eventually(logged)
    finally:
        await engine.stop()
        await store.close()


def _ok(rec: Recorder) -> list[Hit]:
    return [h for h in rec.hits("/shop") if h.status == 200 and h.json["user_id"] != PROBE_USER]


async def test_a_delivery_failed_for_good_is_announced_once_and_the_sink_never_hears_of_itself(
    database_url: str, recorder: Recorder
) -> None:
    recorder.script("/dead", then=Answer(500))
    # The sink fails everything at first: its own failed delivery is announced to no one.
    sink = Switch(500)
    recorder.respond("/ops", sink)
    settings = EngineSettings(
        retry=RetryPolicy(schedule=(0, 0.05, 0.05), jitter=0),
        allow_private_targets=True,
        poll_interval=0.02,
        lease_margin=1,
    )
    store = await Store.open(database_url)
    engine = Engine(store, settings)
    try:
        app, _ = await store.create_app("shop", operator_url=recorder.url("/ops"))
        await store.install(app.id, "u1")
        ep = await store.create_endpoint(
            app.id, url=recorder.url("/dead"), event_types=["*"], timeout=2
        )
        (sink_ep,) = [e for e in await store.list_endpoints(app.id) if e.operational]
        await store.publish([NewEvent("e1", "order_completed", "u1", json.dumps({"id": 1}))])
        await engine.start()

        async def sink_deliveries(status: str) -> list[dict[str, Any]]:
            rows = await store.list_deliveries(app.id, endpoint_id=sink_ep.id)
            return [d for d in rows if d.status == status]

        # e1 fails for good; its delivery.failed to the sink fails for good too.
        await eventually(lambda: sink_deliveries("failed"))
        sink.status = 200
        await store.publish([NewEvent("e2", "order_completed", "u1", json.dumps({"id": 2}))])
        await eventually(lambda: sink_deliveries("delivered"))

        rows = await store.list_deliveries(app.id, endpoint_id=sink_ep.id)
        assert len(rows) == 2, "one per failed delivery of the endpoint, none about the sink"
        assert {d.user_id for d in rows} == {ep.id}
        assert {d.event_type for d in rows} == {"delivery.failed"}
        events = operational(recorder)
        assert {b["user_id"] for b in events} == {ep.id}
        failures = {b["event_id"]: b["data"] for b in events}
        assert len(failures) == 2
        assert sorted(d["event_id"] for d in failures.values()) == ["e1", "e2"]
        for detail in failures.values():
            assert detail["user_id"] == "u1" and detail["endpoint_id"] == ep.id
            assert detail["attempts"] == 3 and detail["status_code"] == 500
        assert len(recorder.hits("/ops")) == 3 + 1, "three attempts at the first, then one"
    finally:
        await engine.stop()
        await store.close()


async def _enabled(store: Store, endpoint_id: str) -> bool:
    return bool((await store.get_endpoint(endpoint_id)).enabled)


async def test_a_recovering_endpoint_and_a_gone_one_are_announced(
    database_url: str, recorder: Recorder
) -> None:
    flaky = Switch(500)
    recorder.respond("/flaky", flaky)
    recorder.script("/gone", then=Answer(410))
    recorder.script("/ops")
    settings = EngineSettings(
        retry=RetryPolicy(schedule=(0, *([0.05] * 10_000)), jitter=0),
        allow_private_targets=True,
        poll_interval=0.02,
        lease_margin=1,
        recovering_after=0.2,
    )
    store = await Store.open(database_url)
    engine = Engine(store, settings)
    try:
        app, _ = await store.create_app("shop", operator_url=recorder.url("/ops"))
        await store.install(app.id, "u1")
        flaky_ep = await store.create_endpoint(
            app.id, url=recorder.url("/flaky"), event_types=["*"], timeout=2
        )
        gone_ep = await store.create_endpoint(
            app.id, url=recorder.url("/gone"), event_types=["*"], timeout=2
        )
        await store.publish([NewEvent("e1", "order_completed", "u1", json.dumps({"id": 1}))])
        await engine.start()
        await recorder.wait_for(lambda: len(recorder.hits("/flaky")) >= 10)
        flaky.status = 200
        await recorder.wait_for(
            lambda: (
                {b["event_type"] for b in operational(recorder)}
                >= {"endpoint.recovering", "endpoint.disabled", "delivery.failed"}
            )
        )
        by_type = {b["event_type"]: b for b in operational(recorder)}
        assert by_type["endpoint.recovering"]["user_id"] == flaky_ep.id
        assert by_type["endpoint.recovering"]["data"]["failing_since"] is not None
        assert by_type["endpoint.disabled"]["user_id"] == gone_ep.id
        assert by_type["endpoint.disabled"]["data"]["reason"] == "gone"
        assert by_type["delivery.failed"]["data"]["status_code"] == 410
        gone = [b for b in operational(recorder) if b["user_id"] == gone_ep.id]
        assert [b["event_type"] for b in gone] == ["delivery.failed", "endpoint.disabled"]
    finally:
        await engine.stop()
        await store.close()


async def test_the_operator_url_is_an_endpoint_of_the_app_that_only_it_changes(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        app, _ = await store.create_app("shop")
        assert app.operator_url is None
        await store.install(app.id, "u1")
        regular = await store.create_endpoint(
            app.id, url="https://example.com/hook", event_types=["*"], timeout=2
        )
        row = await store.set_operator_url(app.id, "https://ops.example.com/a")
        assert row.operator_url == "https://ops.example.com/a"
        (ops,) = [e for e in await store.list_endpoints(app.id) if e.operational]
        assert ops.event_types == tuple(OPERATIONAL_EVENT_TYPES)
        await store.set_operator_url(app.id, "https://ops.example.com/b")
        (same,) = [e for e in await store.list_endpoints(app.id) if e.operational]
        assert same.id == ops.id and same.url == "https://ops.example.com/b"

        # Publishers reach the app's endpoints, never the operational one ("*" included).
        published = await store.publish([NewEvent("e1", "order_completed", "u1", "{}")])
        assert published[0].deliveries == 1
        with pytest.raises(ValidationError):
            await store.publish([NewEvent("e2", "endpoint.disabled", "u1", "{}")])
        with pytest.raises(ValidationError, match="operator_url"):
            await store.update_endpoint(ops.id, url="https://elsewhere.example.com/")
        with pytest.raises(ValidationError, match="operator_url"):
            await store.update_endpoint(ops.id, event_types=["*"])
        await store.update_endpoint(ops.id, timeout=5)  # its other settings are its own
        with pytest.raises(Conflict, match="operator_url"):
            await store.delete_endpoint(ops.id)

        # The same change written twice (a record retried after a lost commit) is one
        # event; the same kind of change again later is another.
        failed = Job(7, "t", 2, regular.id, "u1", "u1", app.id, "order_completed", "e1",
                     "{}", regular.url, 1.0, ("k",))  # fmt: skip
        for job in (failed, failed, replace(failed, attempts=5)):
            async with store.db.transaction() as tx:
                notice = delivery_failed(AttemptResult(job, "failed", 50.0))
                await announce(tx, [notice], 50.0)
        told = await store.list_deliveries(app.id, endpoint_id=ops.id)
        assert len(told) == 2 and {d.user_id for d in told} == {regular.id}

        # The operational endpoint disabled for failing, then enabled: nothing said.
        job = Job(0, "t", 0, ops.id, "u", "u", app.id, "endpoint.enabled", "x", "{}",
                  ops.url, 1.0, ("k",))  # fmt: skip
        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, [AttemptResult(job, "failed", 100.0)], 0.0)
        assert [e.id for e in await store.disable_failing_endpoints(0)] == [ops.id]
        assert await store.enable_probed_endpoint(ops.id)
        assert len(await store.list_deliveries(app.id, endpoint_id=ops.id)) == 2

        await store.set_operator_url(app.id, None)
        assert [e.id for e in await store.list_endpoints(app.id)] == [regular.id]
        assert (await store.get_app(app.id)).operator_url is None
    finally:
        await store.close()
