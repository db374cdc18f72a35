"""Rotating an app's verification key end to end, without a single rejected delivery.

A real ``hookline serve`` publishes continuously to a real ``hookline receive`` that
knows only the current key. The app rotates its key (short grace period), deploys a
receiver that knows both keys and points its endpoint at it, then, once the old key is
retired, one that knows only the new key. Every delivery, before, during and after the
switch, is accepted at its first answer: no attempt is ever answered 4xx.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.hookline_proc import ServeProcess
from tests.support.receive_process import HOOKLINE, ROOT, listening

GRACE = 2.0


class Receive:
    """``hookline receive`` of the rotating receiver app, with the given keys."""

    def __init__(self, tmp: Path, name: str, keys: list[str]) -> None:
        self.port = free_port()
        self.log = tmp / "handled.log"
        self.inbox = tmp / f"{name}.db"
        env = {
            **os.environ,
            "HOOKLINE_TEST_KEYS": ",".join(keys),
            "HOOKLINE_TEST_LOG": str(self.log),
        }
        self.proc = subprocess.Popen(
            [HOOKLINE, "receive", "tests.support.rotating_receiver:receiver",
             "--database", f"sqlite:///{tmp / name}.db", "--port", str(self.port)],
            cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def accepted(self) -> int:
        """How many webhooks this receiver has stored so far."""
        try:
            with sqlite3.connect(f"file:{self.inbox}?mode=ro", uri=True) as conn:
                return int(conn.execute("SELECT count(*) FROM inbox_webhooks").fetchone()[0])
        except sqlite3.OperationalError:  # not made yet, or busy: none seen this time
            return 0

    async def started(self) -> Receive:
        await eventually(lambda: listening(self.port), timeout=30, message="hookline receive")
        return self

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def rejected(db: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT delivery_id, status_code, response_excerpt FROM attempts "
            "WHERE status_code >= 400 AND status_code < 500"
        ).fetchall()


async def test_rotation_rejects_no_delivery_before_during_or_after_the_switch(
    tmp_path: Path,
) -> None:
    receivers: list[Receive] = []
    env = {"HOOKLINE_HEALTH_INTERVAL": "0.2", "HOOKLINE_RETRY_SCHEDULE": "0,0.2,0.5,1,1,1"}
    async with ServeProcess(tmp_path / "sender.db", env=env) as serve, serve.api() as api:
        try:
            app = await api.create_app("rotating")
            app_path = f"/api/v1/apps/{app['id']}"
            await api.install(app["id"], "u1")
            old = app["verification_key"]
            receivers.append(await Receive(tmp_path, "inbox-old", [old]).started())
            endpoint = await api.create_endpoint(app["id"], receivers[-1].url)
            endpoint_path = f"{app_path}/endpoints/{endpoint['id']}"

            published = 0
            publishing = True

            async def publish() -> None:
                nonlocal published
                while publishing:
                    await api.publish("order_completed", "u1", {"id": f"o{published}"})
                    published += 1
                    await asyncio.sleep(0.03)

            publisher = asyncio.create_task(publish())
            # Before: the old key only.
            await eventually(lambda: receivers[0].accepted() >= 10, message="deliveries before")

            rotation = await api.expect(
                200, "POST", f"{app_path}/rotate-key", json={"grace_seconds": GRACE}
            )
            new = rotation["next_verification_key"]
            assert rotation["verification_key"] == old and new and new != old
            switch_at = datetime.fromisoformat(rotation["key_switch_at"]).timestamp()
            again = await api.call("POST", f"{app_path}/rotate-key", json={})
            assert again.status == 409, "one rotation at a time"

            # During the grace period: deploy a receiver with both keys, move the endpoint.
            receivers.append(await Receive(tmp_path, "inbox-both", [old, new]).started())
            await api.expect(200, "PATCH", endpoint_path, json={"url": receivers[-1].url})
            assert time.time() < switch_at, "the grace period ran out before the new deploy"

            async def retired() -> bool:
                shown = await api.expect(200, "GET", app_path)
                return bool(shown["next_verification_key"] is None)

            # Deliveries to the receiver with both keys, up to the switch and past it.
            await eventually(retired, timeout=GRACE + 30, message="the old key to be retired")
            at_switch = receivers[1].accepted()
            await eventually(
                lambda: receivers[1].accepted() >= at_switch + 10, message="deliveries after"
            )
            shown = await api.expect(200, "GET", app_path)
            assert shown["verification_key"] == new

            # After: the old key is gone, a receiver with only the new key is enough.
            receivers.append(await Receive(tmp_path, "inbox-new", [new]).started())
            await api.expect(200, "PATCH", endpoint_path, json={"url": receivers[-1].url})
            await eventually(lambda: receivers[2].accepted() >= 10, message="deliveries at last")
            publishing = False
            await publisher

            rows = await api.settled(app["id"], published, timeout=60)
            assert published > 50
            assert all(r["status"] == "delivered" for r in rows)
            assert rejected(serve.db_path) == []
            handled = set((tmp_path / "handled.log").read_text().split())
            assert len(handled) == published
        finally:
            for receiver in receivers:
                with suppress(Exception):
                    receiver.stop()
