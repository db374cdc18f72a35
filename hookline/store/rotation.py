"""Verification keys: rotating an app's or an endpoint's, retiring the old ones, and
sealing every stored secret again under a new master key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hookline.exceptions import Conflict, NotFound
from hookline.store.base import new_verification_key, to_json
from hookline.store.connector import Row
from hookline.store.endpoints import Endpoints
from hookline.store.records import App, Endpoint
from hookline.store.sealing import KeyBox


class Rotation(Endpoints):
    """Extends ``Endpoints``: a rotated endpoint comes back as endpoints are shown."""

    async def rotate_verification_key(self, app_id: str, grace: float) -> App:
        """Make the app's next verification key; signing switches to it after ``grace``.

        Until then ``X-Selz-Signature`` stays on the current key and ``webhook-signature``
        carries both, so the app adds the new key to its receiver in the meantime and no
        delivery is rejected. A rotation still in its grace period is a ``Conflict``; one
        whose switch has passed is completed first.
        """
        now = self.clock.now()
        async with self.db.transaction() as tx:
            stored = await tx.fetchrow("get_app", id=app_id)
            if stored is None:
                raise NotFound(f"no app with id {app_id!r}")
            row = await tx.fetchrow(
                "set_verification_keys", id=app_id, **self._rotated(stored, now, grace)
            )
        assert row is not None
        return self._app(row)

    async def rotate_endpoint_key(self, endpoint_id: str, grace: float) -> Endpoint:
        """``rotate_verification_key`` for an endpoint: its next key of its own. One that
        has none yet starts from its app's key, so its receiver, which knows that key,
        rejects nothing either; from the switch on, the endpoint's own key signs."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            stored = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if stored is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            if stored["verification_key"] is None:
                app = await tx.fetchrow("get_app", id=stored["app_id"])
                assert app is not None
                if app["next_verification_key"] is not None:
                    raise Conflict(
                        "the app's own key rotation is under way; give the endpoint a key "
                        "of its own once it is over"
                    )
                stored = {**stored, "verification_key": app["verification_key"]}
            row = await tx.fetchrow(
                "set_endpoint_keys", id=endpoint_id, now=now, **self._rotated(stored, now, grace)
            )
        assert row is not None
        return self._shown(row)

    def _rotated(self, stored: Row, now: float, grace: float) -> dict[str, Any]:
        """The keys of an app or an endpoint once a rotation starts: a new next key,
        signing from ``now + grace``. A rotation still in its grace period is a
        ``Conflict``; one whose switch has passed is completed first."""
        current, upcoming = stored["verification_key"], stored["next_verification_key"]
        if upcoming is not None:
            if stored["key_switch_at"] is not None and stored["key_switch_at"] > now:
                raise Conflict(
                    "a key rotation is under way; signing switches to its key at "
                    f"{stored['key_switch_at']:.0f} (seconds since the epoch)"
                )
            current = upcoming
        return {
            "verification_key": current,
            "next_verification_key": self.keys.seal(new_verification_key()),
            "key_switch_at": now + grace,
        }

    async def retire_switched_keys(self) -> int:
        """Drop the old key of every app and endpoint whose signing has switched to its
        new one."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            apps = await tx.fetch("retire_switched_keys", now=now)
            endpoints = await tx.fetch("retire_switched_endpoint_keys", now=now)
        return len(apps) + len(endpoints)

    async def reseal_keys(
        self, keys: KeyBox, *, batch: int = 200, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Write every verification key again sealed by ``keys`` (a new master key, or
        none to store them in the clear); they are opened with this store's own box,
        which must know the old master key. Batches of ``batch`` apps, each its own
        transaction: an interrupted run is simply run again. Returns how many apps."""
        count = await self.db.fetchrow("count_apps")
        total = int(count["n"]) if count else 0
        return await self._reseal(
            keys,
            ("app_keys_after", "store_app_keys"),
            ("verification_key", "next_verification_key"),
            batch=batch,
            progress=None if progress is None else lambda done: progress(done, max(total, done)),
        )

    async def reseal_endpoint_secrets(self, keys: KeyBox, *, batch: int = 200) -> int:
        """``reseal_keys`` for what endpoints keep sealed (headers, client keys, their
        own verification keys); returns how many endpoints. Batches are transactions of
        their own, as there."""
        return await self._reseal(
            keys,
            ("endpoint_secrets_after", "store_endpoint_secrets"),
            ("headers", "client_key", "verification_key", "next_verification_key"),
            batch=batch,
        )

    async def _reseal(
        self,
        keys: KeyBox,
        queries: tuple[str, str],
        columns: tuple[str, ...],
        *,
        batch: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Read rows ``batch`` at a time in id order (``queries``: the read, the write),
        open each sealed column with this store's box and seal it with ``keys``."""
        read, write = queries
        done, after = 0, ""
        while True:
            rows = await self.db.fetch(read, after=after, limit=batch)
            if not rows:
                return done
            sealed = [
                {
                    name: keys.seal(self.keys.open(row[name])) if row[name] else None
                    for name in columns
                }
                | {"id": row["id"]}
                for row in rows
            ]
            async with self.db.transaction() as tx:
                await tx.execute(write, rows=to_json(sealed))
            done += len(rows)
            after = rows[-1]["id"]
            if progress is not None:
                progress(done)
