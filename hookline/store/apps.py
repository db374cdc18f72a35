"""Apps: their names, API keys and operator URL."""

from __future__ import annotations

from hookline import rules
from hookline.events import OPERATIONAL_EVENT_TYPES
from hookline.exceptions import NotFound
from hookline.store.base import (
    PageKey,
    StoreBase,
    hash_api_key,
    new_api_key,
    new_id,
    new_verification_key,
    page_params,
    to_json,
)
from hookline.store.connector import Connection, Row
from hookline.store.records import App


class Apps(StoreBase):
    async def create_app(self, name: str, operator_url: str | None = None) -> tuple[App, str]:
        """Create an app; return it and its API key (shown once, stored hashed).
        With ``operator_url``, hookline's operational webhooks about the app's endpoints
        go there (``set_operator_url``)."""
        rules.APP_NAME.check(name)
        if operator_url is not None:
            rules.check_url_shape(operator_url)
        api_key = new_api_key()
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "create_app",
                id=new_id("app"),
                name=name,
                api_key_hash=hash_api_key(api_key),
                verification_key=self.keys.seal(new_verification_key()),
                now=now,
            )
            assert row is not None
            if operator_url is not None:
                row = await self._set_operator_url(tx, row["id"], operator_url, now)
        return self._app(row), api_key

    async def set_operator_url(self, app_id: str, operator_url: str | None) -> App:
        """Send hookline's operational webhooks about the app's endpoints to
        ``operator_url`` (None: nowhere).

        The URL is kept as the app's *operational endpoint*, subscribed to the operational
        event types only: made with the first URL, its URL changed with the next ones
        (its other settings, its log and its backlog stay), deleted with its deliveries
        when the URL is removed."""
        if operator_url is not None:
            rules.check_url_shape(operator_url)
        async with self.db.transaction() as tx:
            await tx.execute("lock_app", id=app_id)
            if await tx.fetchrow("get_app", id=app_id) is None:
                raise NotFound(f"no app with id {app_id!r}")
            row = await self._set_operator_url(tx, app_id, operator_url, self.clock.now())
        return self._app(row)

    async def _set_operator_url(
        self, tx: Connection, app_id: str, url: str | None, now: float
    ) -> Row:
        current = await tx.fetchrow("operational_endpoint", app_id=app_id)
        if current is not None and url is None:
            await tx.execute("lock_lanes_of_endpoint", id=current["id"])
            await tx.execute("delete_endpoint", id=current["id"])
        elif current is not None:
            await tx.execute("set_operational_url", id=current["id"], url=url, now=now)
        elif url is not None:
            await tx.execute(
                "create_endpoint",
                id=new_id("ep"),
                app_id=app_id,
                url=url,
                event_types=to_json(list(OPERATIONAL_EVENT_TYPES)),
                timeout=min(10.0, self.limits.max_timeout),
                ordered=1,
                max_in_flight=None,
                headers=None,
                client_cert=None,
                client_key=None,
                verification_key=None,
                operational=1,
                rate_limit=None,
                rate_limit_burst=1,
                now=now,
            )
        row = await tx.fetchrow("set_operator_url", id=app_id, operator_url=url)
        assert row is not None
        return row

    async def get_app(self, app_id: str) -> App:
        row = await self.db.fetchrow("get_app", id=app_id)
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._app(row)

    async def app_for_api_key(self, api_key: str) -> App | None:
        row = await self.db.fetchrow("get_app_by_key_hash", api_key_hash=hash_api_key(api_key))
        return None if row is None else self._app(row)

    async def list_apps(
        self, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[App]:
        """Apps oldest first; with ``after`` and ``limit``, one page (``PageKey``)."""
        rows = await self.db.fetch("list_apps", **page_params(after, limit))
        return [self._app(row) for row in rows]

    async def rename_app(self, app_id: str, name: str) -> App:
        rules.APP_NAME.check(name)
        row = await self.db.fetchrow("rename_app", id=app_id, name=name)
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._app(row)

    async def delete_app(self, app_id: str) -> None:
        """Delete an app with its installations, endpoints, deliveries and attempts."""
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_app", id=app_id)
            gone = await tx.fetchrow("delete_app", id=app_id)
        if gone is None:
            raise NotFound(f"no app with id {app_id!r}")

    async def rotate_api_key(self, app_id: str) -> tuple[App, str]:
        """A new API key for the app (shown once); the old one stops working at once."""
        api_key = new_api_key()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "set_api_key_hash", id=app_id, api_key_hash=hash_api_key(api_key)
            )
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._app(row), api_key
