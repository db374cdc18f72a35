"""The receiver's durable inbox: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from hookline.config import check_postgres_url, redact_url
from hookline.exceptions import ConfigError, LeaseLost
from hookline.receiver.inbox.base import (
    Finish,
    Inbox,
    Incoming,
    Outcome,
    Result,
    Stored,
)

__all__ = [
    "Finish",
    "Inbox",
    "Incoming",
    "LeaseLost",
    "Outcome",
    "Result",
    "Stored",
    "open_inbox",
]


def open_inbox(url: str, *, create: bool = True) -> Inbox:
    """The inbox for ``url`` (not yet opened): ``sqlite:///path`` or ``postgresql://...``.

    ``create=False`` opens only an existing inbox: a missing SQLite file, or a database
    without the inbox's tables, is a ``ConfigError``. No directory is ever made.
    """
    if url.startswith("sqlite:"):
        from hookline.receiver.inbox.sqlite import SqliteInbox

        return SqliteInbox(url, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from hookline.receiver.inbox.postgres import PostgresInbox

        check_postgres_url(url)
        return PostgresInbox(url, create=create)
    raise ConfigError(
        f"unsupported inbox URL {redact_url(url)!r}: use sqlite:///path or postgresql://..."
    )
