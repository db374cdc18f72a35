"""W3C ``traceparent``: what is valid is kept in one form, anything else is ignored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.traceparent import format_traceparent, parse, parse_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (VALID, VALID),
        (f"00-{TRACE}-{SPAN}-00", f"00-{TRACE}-{SPAN}-00"),
        (f" {VALID}\t", VALID),
        # Flags this version does not define are not passed on.
        (f"00-{TRACE}-{SPAN}-03", VALID),
        # A later version: its first four fields, written as version 00.
        (f"01-{TRACE}-{SPAN}-01", VALID),
        (f"cc-{TRACE}-{SPAN}-01-what-the-future-holds", VALID),
    ],
)
def test_a_valid_traceparent_is_kept(value: str, kept: str) -> None:
    assert parse(value) == kept


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE.upper()}-{SPAN}-01",  # hex is lower case
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"01-{TRACE}-{SPAN}-01extra",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-0\u0661",  # a digit, but not an ASCII one
        VALID + "x" * 600,
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse(value) is None


def test_a_request_with_two_traceparents_has_none() -> None:
    assert parse_headers([VALID]) == VALID
    assert parse_headers([]) is None
    assert parse_headers([VALID, VALID]) is None


@given(st.text(max_size=80))
def test_parse_never_raises_and_keeps_only_valid_ones(value: str) -> None:
    kept = parse(value)
    assert kept is None or parse(kept) == kept


def test_format_writes_what_parse_keeps() -> None:
    written = format_traceparent(int(TRACE, 16), int(SPAN, 16), sampled=True)
    assert written == VALID == parse(written)
    assert format_traceparent(1, 2, sampled=False) == f"00-{1:032x}-{2:016x}-00"
