"""Installations: which users installed which app (what an event fans out to)."""

from __future__ import annotations

from hookline import rules
from hookline.store.apps import Apps
from hookline.store.base import PageKey, page_params
from hookline.store.records import Installation


class Installations(Apps):
    """Extends ``Apps``: an installation starts by looking its app up."""

    async def install(self, app_id: str, user_id: str) -> tuple[Installation, bool]:
        """Record that ``user_id`` installed the app; return it and whether it is new."""
        rules.USER_ID.check(user_id)
        await self.get_app(app_id)
        async with self.db.transaction() as tx:
            existing = await tx.fetchrow("get_installation", app_id=app_id, user_id=user_id)
            if existing is not None:
                return Installation.from_row(existing), False
            await tx.execute(
                "create_installation", app_id=app_id, user_id=user_id, now=self.clock.now()
            )
            row = await tx.fetchrow("get_installation", app_id=app_id, user_id=user_id)
        assert row is not None
        return Installation.from_row(row), True

    async def count_installations(self, app_id: str) -> int:
        row = await self.db.fetchrow("count_installations", app_id=app_id)
        return int(row["n"]) if row else 0

    async def list_installations(
        self, app_id: str, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[Installation]:
        rows = await self.db.fetch("list_installations", app_id=app_id, **page_params(after, limit))
        return [Installation.from_row(row) for row in rows]
