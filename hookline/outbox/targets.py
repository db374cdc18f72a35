"""Where the relay publishes: hookline's API, or hookline's database directly.

A target takes a batch of events, in order, and returns once hookline has stored all of
them (duplicates included: an event_id hookline already has is accepted as a repeat).
What it raises tells the relay what to do:

* ``Unavailable`` / ``StorageUnavailable``: hookline cannot answer now; send the same
  batch again later.
* ``ValidationError`` or ``EventConflict``: hookline refuses an event of the batch, and
  would refuse it again; the relay finds which one and sets it aside.
* ``Unauthorized`` / ``Forbidden`` / ``ConfigError``: the token is wrong, or the
  database is not hookline's; nothing will get through. ``open`` checks both where it
  can, so that the relay stops at its start rather than at the first row.
* anything else: an error worth retrying, with a log line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from hookline.config import EngineSettings, redact_url
from hookline.exceptions import (
    ConfigError,
    Forbidden,
    HooklineError,
    StorageError,
    Unauthorized,
    ValidationError,
)
from hookline.store.records import NewEvent


class Target(Protocol):
    #: Where it publishes, for logs (no password, no token).
    description: str

    async def open(self) -> None: ...

    async def send(self, events: Sequence[NewEvent]) -> None: ...

    async def close(self) -> None: ...


class HttpTarget:
    """``POST /api/v1/events/batch`` through ``hookline.AsyncClient``, with the admin
    token (publishing is the platform's, not an app's)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.token = token
        self.timeout = timeout
        self.description = base_url
        self._client: object | None = None

    async def open(self) -> None:
        from hookline.client import AsyncClient, Retries

        # One try per call: the relay itself waits and sends again, and says so in its
        # log, for as long as hookline is away.
        client = AsyncClient(
            self.base_url, self.token, timeout=self.timeout, retries=Retries(attempts=1)
        )
        self._client = client
        # A token hookline refuses stops the relay at its start, not at the first row (an
        # empty outbox would hide it until then): an admin-only read, of an event that
        # need not exist (404 is an answer to the admin token). Any other failure,
        # hookline being down included, is left to the sends, which wait it out.
        try:
            await client.events.get("hookline-relay:token-check")
        except (Unauthorized, Forbidden) as exc:
            await self.close()
            raise ConfigError(
                f"{self.description} refused the relay's token: {exc.message}"
            ) from exc
        except HooklineError:
            pass

    async def send(self, events: Sequence[NewEvent]) -> None:
        from hookline.client import AsyncClient

        assert isinstance(self._client, AsyncClient), "open the target first"
        await self._client.events.publish_batch(
            [
                {
                    "event_type": e.event_type,
                    "user_id": e.user_id,
                    "data": _data(e),
                    "event_id": e.id,
                    "traceparent": e.traceparent,
                }
                for e in events
            ]
        )

    async def close(self) -> None:
        from hookline.client import AsyncClient

        client, self._client = self._client, None
        if isinstance(client, AsyncClient):
            await client.aclose()


def _data(event: NewEvent) -> object:
    """The row's data, parsed: publish writes JSON, but a row written by hand may not be,
    and is then refused like any other bad event rather than stopping the relay."""
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise ValidationError(f"event {event.id!r}: its data is not JSON") from None


class StoreTarget:
    """hookline's own database (PostgreSQL or a SQLite file), through the store: what
    ``POST /api/v1/events/batch`` does, without the API in between."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = redact_url(url)
        self.max_event_bytes = EngineSettings.from_env().max_event_bytes
        self._store: object | None = None

    async def open(self) -> None:
        """Open hookline's database now, so that a URL that names none (a missing file,
        a database without hookline's tables: a ``ConfigError``) stops the relay at its
        start rather than at the first row. One that is down or failing is opened by
        the first ``send`` instead, so that a relay started meanwhile waits for it like
        for any other outage."""
        with contextlib.suppress(StorageError):
            await self._open()

    async def _open(self) -> Any:
        from hookline.store import Store

        if self._store is None:
            # create=False: a relay never makes hookline's database; `hookline migrate`
            # or `hookline serve` does.
            self._store = await Store.open(self.url, create=False)
        return self._store

    async def send(self, events: Sequence[NewEvent]) -> None:
        from hookline.store import Store

        store = await self._open()
        assert isinstance(store, Store)
        for event in events:
            # The store checks ids, user and type; the size is the API's rule.
            if len(event.data.encode()) > self.max_event_bytes:
                raise ValidationError(
                    f"event {event.id!r}: data is {len(event.data.encode())} bytes; "
                    f"hookline takes at most {self.max_event_bytes}"
                )
        await store.publish(events)

    async def close(self) -> None:
        from hookline.store import Store

        store, self._store = self._store, None
        if isinstance(store, Store):
            await store.close()


def target_for(to: str, token: str | None) -> Target:
    """The target ``--to`` names: an ``http(s)://`` URL of hookline's API, a database URL
    (``postgresql://``, ``sqlite:///``), or the path of a SQLite file."""
    if to.startswith(("http://", "https://")):
        if not token:
            raise ConfigError(
                "relaying to hookline's API needs its admin token: set HOOKLINE_ADMIN_TOKEN "
                "(or pass --token)"
            )
        return HttpTarget(to, token)
    if to.startswith(("postgresql:", "postgres:", "sqlite:")):
        return StoreTarget(to)
    if "://" not in to and Path(to).is_file():
        return StoreTarget(f"sqlite:///{Path(to).resolve()}")
    raise ConfigError(
        f"--to {redact_url(to)!r} is neither hookline's API (http://host:port) nor its "
        "database (postgresql://user@host/db, sqlite:///path.db, or an existing file)"
    )
