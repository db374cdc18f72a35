"""An endpoint's own verification key through the real ``hookline serve``: it signs the
endpoint's deliveries instead of the app's, and rotates as the app's key does, without
a receiver that knows the current key rejecting anything before the switch."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from hookline.exceptions import SignatureError
from hookline.signing import Verifier
from tests.support.eventually import eventually
from tests.support.hookline_proc import Api
from tests.support.recorder import Hit, Recorder

GRACE = 2.0


def accepted(keys: tuple[str, ...], hit: Hit) -> bool:
    try:
        Verifier(keys=keys).verify(hit.headers, hit.body)
    except SignatureError:
        return False
    return True


async def test_an_endpoint_key_signs_and_rotates_without_a_rejection(
    api: Api, recorder: Recorder
) -> None:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    app_key = app["verification_key"]
    own = await api.create_endpoint(app["id"], recorder.url("/own"), own_verification_key=True)
    shared = await api.create_endpoint(app["id"], recorder.url("/shared"))
    assert own["verification_key"] not in (None, app_key)
    assert shared["verification_key"] is None

    await api.publish("order_completed", "store-1", {"id": 1})
    await recorder.wait_for(lambda: len(recorder.hits()) == 2)
    (by_own,) = recorder.hits("/own")
    assert accepted((own["verification_key"],), by_own)
    assert not accepted((app_key,), by_own)
    assert accepted((app_key,), recorder.hits("/shared")[0])

    # The shared endpoint gets a key of its own, starting from the app's: its receiver,
    # which knows only the app's key, accepts everything until the switch.
    path = f"/api/v1/apps/{app['id']}/endpoints/{shared['id']}/rotate-key"
    rotated = await api.expect(200, "POST", path, json={"grace_seconds": GRACE})
    new_key = rotated["next_verification_key"]
    assert rotated["verification_key"] == app_key and new_key not in (None, app_key)
    reply = await api.call("POST", path, json={"grace_seconds": GRACE})
    assert reply.status == 409, reply
    switch_at = datetime.fromisoformat(rotated["key_switch_at"]).timestamp()

    await api.publish("order_completed", "store-1", {"id": 2})
    await recorder.wait_for(lambda: len(recorder.hits("/shared")) == 2)
    during = recorder.hits("/shared")[1]
    if time.time() < switch_at:  # still in the grace period (a loaded machine may be past it)
        assert accepted((app_key,), during)
    assert accepted((app_key, new_key), during)

    await eventually(lambda: time.time() > switch_at + 0.5, timeout=GRACE + 10)
    await api.publish("order_completed", "store-1", {"id": 3})
    await recorder.wait_for(lambda: len(recorder.hits("/shared")) == 3)
    after = recorder.hits("/shared")[2]
    assert accepted((new_key,), after)
    assert not accepted((app_key,), after)
    # The app's own key and its other endpoint are untouched.
    assert (await api.expect(200, "GET", f"/api/v1/apps/{app['id']}"))[
        "verification_key"
    ] == app_key
    rows = await api.settled(app["id"], 6)
    assert {r["status"] for r in rows} == {"delivered"}
    assert all(len(r["attempt_log"]) == 1 for r in rows)


@pytest.mark.parametrize("serve_env", [{"HOOKLINE_HEALTH_INTERVAL": "0.2"}])
async def test_a_switched_endpoint_key_is_retired(api: Api, recorder: Recorder) -> None:
    app = await api.create_app("shop")
    endpoint = await api.create_endpoint(app["id"], recorder.url("/x"))
    path = f"/api/v1/apps/{app['id']}/endpoints/{endpoint['id']}"
    rotated = await api.expect(200, "POST", f"{path}/rotate-key", json={"grace_seconds": 0})

    async def retired() -> bool:
        row = await api.expect(200, "GET", path)
        return bool(row["next_verification_key"] is None and row["verification_key"])

    await eventually(retired, timeout=30)
    row = await api.expect(200, "GET", path)
    assert row["verification_key"] == rotated["next_verification_key"]
