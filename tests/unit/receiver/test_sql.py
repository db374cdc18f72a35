"""Both inbox dialects define the same named queries, with the same parameters."""

from __future__ import annotations

import re

from hookline.receiver.inbox.base import load_queries
from hookline.sql.named import PARAM, compile_queries


def test_both_dialects_define_the_same_queries() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sorted(sqlite) == sorted(postgres)
    assert "schema" in sqlite and "claim_lanes" in sqlite


def test_each_query_takes_the_same_parameters_in_both() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    for name in sqlite:
        assert set(PARAM.findall(sqlite[name])) == set(PARAM.findall(postgres[name])), name


def test_every_postgres_query_compiles_to_numbered_parameters_only() -> None:
    for name, query in compile_queries(load_queries("postgres")).items():
        assert not re.search(r"(?<![:\w]):[a-z_]", query.sql), name
