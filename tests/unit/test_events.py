"""The event catalog and the envelope: the 19 types, and every way a body can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hookline.events import (
    EVENT_DESCRIPTIONS,
    EVENT_TYPES,
    WILDCARD,
    Envelope,
    check_event_type,
    encode_envelope,
    format_timestamp,
    matches,
    new_token,
    parse_envelope,
    parse_timestamp,
)
from hookline.exceptions import MalformedWebhook, ValidationError
from hookline.rules import check_event_filter

SEED_TYPES = """
blog_post_created blog_post_updated blog_post_deleted category_created category_updated
category_deleted customer_created customer_updated customer_deleted discount_created
discount_updated discount_deleted order_payment_succeeded order_completed product_created
product_updated product_deleted product_soldout product_variant_soldout
""".split()

GOOD: dict[str, Any] = {
    "webhook_id": "ep_1",
    "event_type": "order_completed",
    "timestamp": "2016-12-02T00:30:50",
    "token": "WEDAuucHsQQ0D+81S4SizL1MstKQVkHeVTFjHqa7sTnnVVYh",
    "event_id": "evt_1",
    "user_id": "usr_1",
    "data": {"id": "ord_1", "items": [{"quantity": 1}]},
}


def test_the_catalog_is_the_seeds_19_types_in_order() -> None:
    assert list(EVENT_TYPES) == SEED_TYPES
    assert len(set(EVENT_TYPES)) == 19
    assert set(EVENT_DESCRIPTIONS) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_known_type_is_accepted(event_type: str) -> None:
    assert check_event_type(event_type) == event_type


@pytest.mark.parametrize("event_type", ["order_created", "ORDER_COMPLETED", "", "*"])
def test_an_unknown_type_is_refused_with_the_list(event_type: str) -> None:
    with pytest.raises(ValidationError, match=r"unknown event type.*expected one of"):
        check_event_type(event_type)


def test_event_filters() -> None:
    assert check_event_filter(["*"]) == [WILDCARD]
    assert check_event_filter(["product_created", "blog_post_created", "product_created"]) == [
        "blog_post_created",
        "product_created",
    ]
    for bad in ([], ["*", "order_completed"], ["nope"]):
        with pytest.raises(ValidationError):
            check_event_filter(bad)
    assert matches(["*"], "order_completed")
    assert not matches(["order_completed"], "product_created")


def test_tokens_are_48_base64_characters_and_differ() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 48 for t in tokens)


def test_timestamps_round_trip_as_utc() -> None:
    moment = datetime(2016, 12, 2, 0, 30, 50, tzinfo=UTC)
    assert format_timestamp(moment) == "2016-12-02T00:30:50"
    assert format_timestamp(moment.timestamp()) == "2016-12-02T00:30:50"
    assert parse_timestamp("2016-12-02T00:30:50") == moment


_DROP = object()  # marks a field to leave out of the body


def _body(**changes: Any) -> bytes:
    doc = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not _DROP})


def test_a_good_body_parses() -> None:
    envelope = parse_envelope(_body())
    assert envelope == Envelope(**GOOD)


def test_hooklines_own_fields_are_optional() -> None:
    envelope = parse_envelope(_body(event_id=_DROP, user_id=_DROP))
    assert (envelope.event_id, envelope.user_id) == (None, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (_body(token=_DROP), "missing required field.*token"),
        (_body(webhook_id=_DROP, data=_DROP), "missing required field.*webhook_id, data"),
        (_body(timestamp=1480638650), "'timestamp' must be a non-empty string"),
        (_body(token=""), "'token' must be a non-empty string"),
        (_body(webhook_id=None), "'webhook_id' must be a non-empty string"),
        (_body(event_type=["order_completed"]), "'event_type' must be a non-empty string"),
        (_body(event_id=7), "'event_id' must be a string"),
        (_body(user_id={"id": 1}), "'user_id' must be a string"),
        (_body(data=[1]), "'data' must be a JSON object"),
        (_body(data="ord_1"), "'data' must be a JSON object"),
        (_body(event_type="order_created"), "unknown event type 'order_created'"),
        (_body(timestamp="2016-12-02 00:30:50"), "not UTC in the form"),
        (_body(timestamp="2016-12-02T00:30:50Z"), "not UTC in the form"),
        (_body(timestamp="yesterday"), "not UTC in the form"),
    ],
)
def test_each_malformed_body_is_refused_saying_why(body: bytes, message: str) -> None:
    with pytest.raises(MalformedWebhook, match=message):
        parse_envelope(body)


def test_encode_envelope_is_the_envelope_json_and_parses_back() -> None:
    fields = {k: v for k, v in GOOD.items() if k != "data"}
    body = encode_envelope(**fields, data_json=orjson.dumps(GOOD["data"]))
    envelope = parse_envelope(body)
    assert envelope == Envelope(**GOOD)
    assert body == envelope.to_json()
    assert orjson.loads(body) == GOOD


def test_encode_envelope_escapes_the_plain_fields() -> None:
    tricky = 'ep"},"data":{"id":"evil'
    body = encode_envelope(
        **{**{k: v for k, v in GOOD.items() if k != "data"}, "webhook_id": tricky},
        data_json=b'{"id":"ord_1"}',
    )
    envelope = parse_envelope(body)
    assert envelope.webhook_id == tricky
    assert envelope.data == {"id": "ord_1"}


def test_operational_types_never_meet_the_selz_types_and_only_receivers_take_them() -> None:
    from hookline.events import EVENT_TYPES, OPERATIONAL_EVENT_TYPES, check_event_type
    from hookline.events import parse_envelope as parse
    from hookline.receiver import Receiver

    assert all("." in t for t in OPERATIONAL_EVENT_TYPES)
    assert not any("." in t for t in EVENT_TYPES)
    body = {
        "webhook_id": "ep_ops", "event_type": "endpoint.disabled",
        "timestamp": "2026-12-07T10:00:45", "token": "t" * 48, "event_id": "evt_op_1",
        "user_id": "ep_1", "data": {"id": "ep_1"},
    }  # fmt: skip
    assert parse(orjson.dumps(body)).event_type == "endpoint.disabled"
    with pytest.raises(MalformedWebhook):
        parse(orjson.dumps({**body, "event_type": "endpoint.deleted"}))
    for event_type in OPERATIONAL_EVENT_TYPES:
        with pytest.raises(ValidationError):
            check_event_type(event_type)  # publishers cannot send them
        with pytest.raises(ValidationError):
            check_event_filter([event_type])  # nor an endpoint subscribe to them
    receiver = Receiver(keys=["k" * 32], database="sqlite:///:memory:")
    receiver.on("delivery.failed")(lambda event: None)
    assert receiver.handlers_for("delivery.failed")
