"""What every part of the store shares: the connection, the limits, the key box that
opens sealed secrets, and the small helpers each resource's queries use."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Self

import orjson

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.config import Limits, redact_url
from hookline.exceptions import ConfigError
from hookline.store.connector import Connector, Row, connector_for
from hookline.store.records import App
from hookline.store.sealing import KeyBox

#: Where a page of a list starts: just after the row with this (created_at, id), in the
#: list's own order (the id is the user id for installations).
PageKey = tuple[float, str]

#: A lane: (endpoint_id, lane).
Lane = tuple[str, str]


def page_params(after: PageKey | None, limit: int | None) -> dict[str, Any]:
    at, key = after if after is not None else (None, None)
    return {"after_at": at, "after_key": key, "limit": limit}


def to_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_api_key() -> str:
    return "hk_" + secrets.token_urlsafe(32)


def new_verification_key() -> str:
    return secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    # API keys carry 256 random bits, so a fast hash is enough: there is nothing to
    # brute-force, and the lookup by hash runs on every API request.
    return hashlib.sha256(api_key.encode()).hexdigest()


def signing_keys(app: Row, now: float) -> tuple[str, ...]:
    """The keys that sign a request now, the signing one first.

    During a rotation both keys sign the Standard Webhooks header; ``X-Selz-Signature``
    (one signature only) switches to the new key at ``key_switch_at``.
    """
    current, upcoming = app["verification_key"], app.get("next_verification_key")
    if not upcoming:
        return (current,)
    switch_at = app.get("key_switch_at")
    if switch_at is not None and now >= switch_at:
        return (upcoming, current)
    return (current, upcoming)


class StoreBase:
    """``keys`` seals verification keys at rest (``KeyBox.from_env()`` when not given:
    sealed when ``HOOKLINE_MASTER_KEY`` is set, in the clear otherwise). ``limits`` bound
    what one app may ask for (``Limits.from_env()`` when not given). ``clock`` gives
    every time the store writes or compares with what it keeps (the engine and the health
    monitor over this store read the same clock); the SQL never reads the server's."""

    def __init__(
        self,
        connector: Connector,
        keys: KeyBox | None = None,
        limits: Limits | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = connector
        self.keys = keys if keys is not None else KeyBox.from_env()
        self.limits = limits if limits is not None else Limits.from_env()
        self.clock = clock

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        keys: KeyBox | None = None,
        limits: Limits | None = None,
        create: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Self:
        """Open the database at ``url``, bringing its schema up to date.

        ``create=False`` opens only an existing hookline database: a missing SQLite file,
        or a database without hookline's tables (the wrong PostgreSQL database, say), is
        a ``ConfigError`` instead of a new, empty hookline database.
        """
        connector = connector_for(url, create=create)
        await connector.open()
        try:
            if not create and await connector.schema_version() == 0:
                raise ConfigError(
                    f"{redact_url(url)} holds no hookline database; correct the URL, "
                    "or create one there with `hookline migrate`"
                )
            if migrate:
                await connector.migrate()
        except BaseException:
            await connector.close()
            raise
        return cls(connector, keys, limits, clock=clock)

    async def close(self) -> None:
        await self.db.close()

    def _opened(self, row: Row) -> Row:
        """The row with its verification keys opened (they may be sealed at rest)."""
        row["verification_key"] = self.keys.open(row["verification_key"])
        row["next_verification_key"] = self.keys.open_optional(row.get("next_verification_key"))
        return row

    def _app(self, row: Row) -> App:
        return App.from_row(
            row,
            self.keys.open(row["verification_key"]),
            self.keys.open_optional(row["next_verification_key"]),
        )

    def _seal_headers(self, headers: dict[str, str] | None) -> str | None:
        return self.keys.seal(to_json(headers)) if headers else None

    def _open_headers(self, stored: str | None) -> dict[str, str]:
        found: dict[str, str] = orjson.loads(self.keys.open(stored)) if stored else {}
        return found
