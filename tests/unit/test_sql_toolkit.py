"""The storage toolkit the store and the inbox share: named blocks and placeholders."""

from __future__ import annotations

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
