"""Pages on every list of the API (and the dashboard's list of apps): ``?limit=`` (at
most ``MAX_LIMIT``) and ``?cursor=``; the answer is ``{"data": [...], "next_cursor":
...}``, with ``next_cursor`` null on the last page.

A cursor is opaque to clients: here the (created_at, id) of the last row of the page,
so a page goes on after that row (keyset paging: rows added or removed meanwhile never
make a row appear twice or be skipped, and no page costs more than the ones before).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

import orjson
from fastapi import Query

from hookline.exceptions import ValidationError
from hookline.store.base import PageKey

T = TypeVar("T")

MAX_LIMIT = 500
DEFAULT_LIMIT = 100

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}.")
]
#: Deliveries carry their attempt log (up to 25 attempts, each with a response excerpt),
#: so their pages are smaller: a page of 500 could reach tens of megabytes.
MAX_DELIVERY_LIMIT = 100
DeliveryLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_DELIVERY_LIMIT,
        description=f"Deliveries per page, at most {MAX_DELIVERY_LIMIT}.",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=400,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The previous page's next_cursor, unchanged.",
    ),
]


def encode(key: PageKey) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode()


def decode(cursor: str | None) -> PageKey | None:
    if cursor is None:
        return None
    try:
        at, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(at, int | float) and math.isfinite(at) and isinstance(key, str):
            return float(at), key
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError):
        pass
    raise ValidationError("cursor: not one this list gave; pass its next_cursor unchanged")


class Listed(Protocol):
    """What ``by_id`` pages by: apps and endpoints."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> float: ...


def page(rows: list[T], limit: int, key: Callable[[T], PageKey]) -> dict[str, Any]:
    """The answer for ``rows`` fetched with ``limit + 1`` (one more says there is more)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"data": rows, "next_cursor": encode(key(rows[-1])) if more else None}


def by_id(row: Listed) -> PageKey:
    return row.created_at, row.id
