"""The input rules: what the OpenAPI document states is what the checks accept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline import rules
from hookline.exceptions import ValidationError

TEXT_RULES = [rules.APP_NAME, rules.USER_ID, rules.EVENT_ID, rules.URL]


@pytest.mark.parametrize("rule", TEXT_RULES, ids=lambda r: r.name)
def test_what_the_document_allows_the_check_accepts(rule: rules.TextRule) -> None:
    schema = rule.json_schema()
    pattern = re.compile(schema["pattern"])

    @given(st.from_regex(pattern, fullmatch=True).filter(lambda v: len(v) <= rule.max_length))
    def check(value: str) -> None:
        assert rule.check(value) == value

    check()


@given(st.from_regex(re.compile(rules.URL.json_schema()["pattern"]), fullmatch=True))
def test_every_documented_url_passes_the_whole_url_check(url: str) -> None:
    if len(url) <= rules.URL.max_length:
        assert rules.check_url(url, allow_private=True) == url


@pytest.mark.parametrize("value", ["", " a", "a ", "a\x00", "a\nb", "x" * 201])
def test_app_names_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="an app name"):
        rules.APP_NAME.check(value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1e400}', "too large for a 64-bit float"),
        (b'{"a": 9223372036854775808}', "does not fit in a 64-bit integer"),
        (b'{"a": 18446744073709551616}', "does not fit in a 64-bit integer"),
        (b'{"a": 2.5925899602944943e+222}', "is a whole number beyond 64 bits"),
        (b'{"a": -1E19}', "is a whole number beyond 64 bits"),
        (b'{"a": 12345678901234567890.0}', "is a whole number beyond 64 bits"),
        (b"[" * 1100 + b"]" * 1100, "nests deeper than 1024 levels"),
    ],
)
def test_json_that_breaks_a_rule(body: bytes, message: str) -> None:
    with pytest.raises(rules.InvalidJson, match=message) as refused:
        rules.parse_json(body)
    assert not refused.value.malformed


def test_json_that_is_not_json() -> None:
    with pytest.raises(rules.InvalidJson, match="not valid JSON") as refused:
        rules.parse_json(b'{"a": ')
    assert refused.value.malformed


def test_numbers_with_exponents_that_fit() -> None:
    # Every float from 2**53 up is a whole number: beyond 2**63 none fits.
    assert rules.parse_json(b'{"a": 1e18, "b": 2.5e-300, "c": "1e99", "d": 0.5e1}') == {
        "a": 1e18,
        "b": 2.5e-300,
        "c": "1e99",
        "d": 5.0,
    }


def test_long_digit_runs_in_strings_and_exact_integers() -> None:
    body = b'{"card": "12345678901234567890123", "max": 9223372036854775807, "f": 1.5}'
    assert rules.parse_json(body) == {
        "card": "12345678901234567890123",
        "max": 2**63 - 1,
        "f": 1.5,
    }


def test_event_data_depth() -> None:
    deep: list[object] = []  # data itself is the first level, this list the second
    for _ in range(rules.MAX_DATA_DEPTH - 2):
        deep = [deep]
    assert rules.event_data({"x": deep}, max_bytes=10**6)
    with pytest.raises(ValidationError, match="nests deeper than 254 levels"):
        rules.event_data({"x": [deep]}, max_bytes=10**6)


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan"), 1e300])
def test_times_beyond_any_date(seconds: float) -> None:
    with pytest.raises(ValidationError):
        rules.check_time(seconds)


def test_header_checks_name_the_header_never_its_value() -> None:
    assert rules.check_headers({"X-Api-Key": "abc def"}) == {"X-Api-Key": "abc def"}
    for headers, message in [
        ({"Content-Length": "1"}, "Content-Length header is set by hookline"),
        ({"X-Key": "secret\nX-Other: 1"}, "the value of the X-Key header"),
        ({"X-Key": " secret"}, "the value of the X-Key header"),
        ({"X-Key": "x" * 4097}, "the value of the X-Key header"),
        ({"X:Key": "secret"}, "a header name"),
        ({f"X-{i}": "v" * 1000 for i in range(10)}, "at most 8192 bytes"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(message)) as raised:
            rules.check_headers(headers)
        assert "secret" not in raised.value.message


def test_basic_and_bearer_auth_are_one_authorization_header() -> None:
    assert rules.with_authorization({}, basic=("Aladdin", "open sesame")) == {
        "Authorization": "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    }
    assert rules.with_authorization({"X-A": "1"}, bearer="abc.DEF-123~+/==") == {
        "X-A": "1",
        "Authorization": "Bearer abc.DEF-123~+/==",
    }
    with pytest.raises(ValidationError, match="one way only"):
        rules.with_authorization({}, basic=("a", "b"), bearer="t")
    with pytest.raises(ValidationError, match="one way only"):
        rules.with_authorization({"AUTHORIZATION": "x"}, bearer="t")
