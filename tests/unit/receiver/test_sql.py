"""Both inbox dialects define the same named queries, with the same parameters."""

from __future__ import annotations

import re

from hookline.receiver.inbox.base import load_queries


def test_both_dialects_define_the_same_queries() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sorted(sqlite) == sorted(postgres)
    assert "schema" in sqlite and "claim_lanes" in sqlite


def test_each_query_takes_the_same_parameters_in_both() -> None:
    param = re.compile(r"(?<![:\w]):([a-z_]+)")
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    for name in sqlite:
        assert set(param.findall(sqlite[name])) == set(param.findall(postgres[name])), name
