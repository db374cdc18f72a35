"""The storage toolkit the store and the inbox share: named blocks, placeholders and the
table of driver errors."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from hookline.exceptions import StorageError, StorageUnavailable
from hookline.sql.errors import SQLITE_ERRORS, postgres_errors, storage_error
from hookline.sql.named import Query, load_queries


def test_named_parameters_become_numbered_and_casts_stay() -> None:
    query = Query.compile("SELECT :a::jsonb, :b, :a, x::text FROM t WHERE y = :b_c")
    assert query.sql == "SELECT $1::jsonb, $2, $1, x::text FROM t WHERE y = $3"
    assert query.names == ("a", "b", "b_c")
    assert query.args({"a": 1, "b": 2, "b_c": 3, "unused": 4}) == [1, 2, 3]


def test_blocks_are_read_from_any_package() -> None:
    store = load_queries("hookline.store", "queries/sqlite.sql")
    inbox = load_queries("hookline.receiver", "sql/sqlite.sql")
    assert "create_app" in store and "claim_lanes" in inbox
    # The preamble before the first block is a comment, not a query; bodies are trimmed.
    assert all(sql and sql == sql.strip() for sql in (*store.values(), *inbox.values()))


UNAVAILABLE = [
    ConnectionRefusedError(111, "refused"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InternalClientError("another operation is in progress"),
    asyncpg.InterfaceError("connection is closed"),
]
FAILED = [
    asyncpg.UniqueViolationError("duplicate key value"),
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    sqlite3.OperationalError("database is locked"),
    sqlite3.IntegrityError("UNIQUE constraint failed"),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=repr)
def test_a_database_gone_for_now_is_unavailable(error: Exception) -> None:
    assert isinstance(error, postgres_errors())
    translated = storage_error(error, "claim_due", database="PostgreSQL")
    assert isinstance(translated, StorageUnavailable)
    assert "PostgreSQL unreachable (claim_due)" in translated.message


@pytest.mark.parametrize("error", FAILED, ids=repr)
def test_any_other_driver_error_is_a_storage_error(error: Exception) -> None:
    assert isinstance(error, (*postgres_errors(), *SQLITE_ERRORS))
    translated = storage_error(error, "create_app", database="SQLite")
    assert type(translated) is StorageError
    assert translated.message == f"SQLite (create_app): {error}"
