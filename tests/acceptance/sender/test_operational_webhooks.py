"""Operational webhooks through the real ``hookline serve``, set up as an operator would:
a short disable period in the environment, an app's operator URL through the API. The
operator's sink hears that an endpoint was disabled, then enabled again once it
answers, each request verified with hookline's receiver ``Verifier``."""

from __future__ import annotations

import pytest

from hookline.signing import Verifier
from tests.support.hookline_proc import Api
from tests.support.recorder import Answer, Hit, Recorder


class Switch:
    def __init__(self, status: int) -> None:
        self.status = status

    def __call__(self, hits: list[Hit]) -> Answer:
        return Answer(self.status)


@pytest.mark.parametrize(
    "serve_env",
    [
        {
            "HOOKLINE_RETRY_SCHEDULE": "0" + ",0.1" * 200,
            "HOOKLINE_DISABLE_AFTER": "1",
            "HOOKLINE_HEALTH_INTERVAL": "0.2",
            "HOOKLINE_PROBE_INTERVAL": "0.2",
        }
    ],
)
async def test_the_operator_url_hears_an_endpoint_disabled_then_enabled(
    api: Api, recorder: Recorder
) -> None:
    shop = Switch(500)
    recorder.respond("/shop", shop)
    recorder.script("/ops")
    app = await api.expect(
        201, "POST", "/api/v1/apps", json={"name": "shop", "operator_url": recorder.url("/ops")}
    )
    await api.install(app["id"], "store-1")
    endpoint = await api.create_endpoint(app["id"], recorder.url("/shop"))
    await api.publish("order_completed", "store-1", {"id": 1})

    def told() -> list[str]:
        return [h.json["event_type"] for h in recorder.hits("/ops")]

    await recorder.wait_for(lambda: "endpoint.disabled" in told())
    shop.status = 200
    await recorder.wait_for(lambda: "endpoint.enabled" in told())
    assert told() == ["endpoint.disabled", "endpoint.enabled"]

    verifier = Verifier(keys=(app["verification_key"],))
    for hit in recorder.hits("/ops"):
        envelope = verifier.verify(hit.headers, hit.body)
        assert envelope.user_id == endpoint["id"] and envelope.data["id"] == endpoint["id"]
    disabled, enabled = (h.json["data"] for h in recorder.hits("/ops"))
    assert (
        disabled["reason"] == "failing"
        and "failing for more than 1 seconds" in (disabled["message"])
    )
    assert enabled["failing_since"] == disabled["failing_since"]
    await recorder.wait_for(lambda: any(h.status == 200 for h in recorder.hits("/shop")))
