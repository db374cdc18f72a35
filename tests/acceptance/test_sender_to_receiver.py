"""hookline's sender to hookline's receiver, end to end, all 19 event types.

The real ``hookline serve`` publishes one event of each type for one user to an endpoint
that is the real ``hookline receive``; every one is verified, stored and handled once, in
publication order. Skipped while ``hookline serve`` does not exist yet.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from hookline.cli import main
from hookline.events import EVENT_TYPES
from hookline.receiver.inbox import open_inbox
from hookline.receiver.samples import sample_data
from tests.conftest import free_port
from tests.support.eventually import eventually, eventually_sync
from tests.support.receive_process import HOOKLINE, ROOT, ReceiveProcess, listening
from tests.support.receiver import read_runs, statuses

pytestmark = pytest.mark.slow
ADMIN = "test-admin-7f3c9a1e5b2d4c8f6a0e9b3d"


def _serve_exists() -> bool:
    return "serve" in CliRunner().invoke(main, ["--help"]).output.split("Commands:")[-1]


@pytest.fixture
def sender(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not _serve_exists():
        pytest.skip("hookline serve is not there yet")
    port = free_port()
    env = {**os.environ, "HOOKLINE_ADMIN_TOKEN": ADMIN, "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1"}
    proc = subprocess.Popen(
        [HOOKLINE, "serve", "--database", f"sqlite:///{tmp_path}/sender.db", "--port", str(port)],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    eventually_sync(
        lambda: listening(port) or proc.poll() is not None, message="hookline serve to listen"
    )
    assert proc.poll() is None, "hookline serve exited"
    yield base
    proc.terminate()
    proc.wait(timeout=30)


async def _all_delivered(api: aiohttp.ClientSession, app_id: str, count: int) -> bool:
    async with api.get(f"/api/v1/apps/{app_id}/deliveries?limit=100") as response:
        assert response.status == 200, await response.text()
        deliveries = (await response.json())["data"]
    return len(deliveries) == count and all(d["status"] == "delivered" for d in deliveries)


async def _inbox_done(url: str, count: int) -> bool:
    inbox = open_inbox(url)
    await inbox.open()
    try:
        return await statuses(inbox) == {"done": count}
    finally:
        await inbox.close()


async def test_every_type_from_sender_to_receiver(sender: str, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(base_url=sender, headers=auth) as api:
        async with api.post("/api/v1/apps", json={"name": "shop"}) as response:
            assert response.status == 201, await response.text()
            app = await response.json()
        async with api.post(
            f"/api/v1/apps/{app['id']}/installations", json={"user_id": "store-1"}
        ) as response:
            assert response.status == 201, await response.text()

        log = tmp_path / "runs.jsonl"
        log.touch()
        os.environ["HOOKLINE_TEST_KEY"] = app["verification_key"]
        try:
            inbox_url = f"sqlite:///{tmp_path}/inbox.db"
            receiver = ReceiveProcess(inbox_url, free_port(), log).start()
        finally:
            del os.environ["HOOKLINE_TEST_KEY"]
        try:
            async with api.post(
                f"/api/v1/apps/{app['id']}/endpoints",
                json={"url": receiver.url, "event_types": ["*"]},
            ) as response:
                assert response.status == 201, await response.text()
            for seq, event_type in enumerate(EVENT_TYPES):
                event = {
                    "event_type": event_type,
                    "user_id": "store-1",
                    "event_id": f"evt-{seq}",
                    "data": {**sample_data(event_type), "seq": seq},
                }
                async with api.post("/api/v1/events", json=event) as response:
                    assert response.status == 202, await response.text()
            await eventually(
                lambda: len([r for r in read_runs(log) if r.end]) >= len(EVENT_TYPES), timeout=120
            )
            # Every delivery recorded as delivered, every webhook done: neither side has
            # anything left that could send or run one again.
            await eventually(lambda: _all_delivered(api, app["id"], len(EVENT_TYPES)))
            await eventually(lambda: _inbox_done(inbox_url, len(EVENT_TYPES)))
        finally:
            receiver.stop()
    runs = read_runs(log)
    assert sorted(r.event_id for r in runs) == sorted(f"evt-{i}" for i in range(len(EVENT_TYPES)))
    assert [r.seq for r in runs] == list(range(len(EVENT_TYPES)))  # one user: in order
