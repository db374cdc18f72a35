"""hookline's ``:name`` statements in each DB-API parameter style a link may need."""

from __future__ import annotations

import pytest

from hookline.exceptions import StorageError
from hookline.transactional._links import render

SQL = "SELECT :a::jsonb, '50%', :b, :a"
PARAMS = {"a": "[1]", "b": 2}


@pytest.mark.parametrize(
    ("style", "sql", "args"),
    [
        ("numeric_dollar", "SELECT $1::jsonb, '50%', $2, $1", ["[1]", 2]),
        ("numeric", "SELECT :1::jsonb, '50%', :2, :1", ["[1]", 2]),
        ("qmark", "SELECT ?::jsonb, '50%', ?, ?", ["[1]", 2, "[1]"]),
        ("format", "SELECT %s::jsonb, '50%%', %s, %s", ["[1]", 2, "[1]"]),
        ("pyformat", "SELECT %(a)s::jsonb, '50%%', %(b)s, %(a)s", PARAMS),
        ("named", SQL, PARAMS),
    ],
)
def test_each_style(style: str, sql: str, args: object) -> None:
    statement = render(SQL, style)
    assert (statement.sql, statement.args(PARAMS)) == (sql, args)


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(StorageError, match="not supported"):
        render(SQL, "carrier_pigeon")


def test_a_publish_that_would_wait_on_the_event_loop_is_stopped_not_blocked() -> None:
    import asyncio

    from hookline.transactional._publish import _drive

    async def returns_at_once() -> int:
        return 7

    async def waits() -> int:
        await asyncio.sleep(0)
        return 7

    assert _drive(returns_at_once()) == 7
    with pytest.raises(RuntimeError, match="waited on the event loop"):
        _drive(waits())
