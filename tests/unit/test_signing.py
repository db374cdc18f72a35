"""Signatures: equal to the seed's Node.js algorithm, readable by Standard Webhooks
libraries, and checked by ``Verifier`` with a message that says what went wrong."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookline import signing
from hookline.events import Envelope, encode_envelope, format_timestamp, new_token
from hookline.exceptions import BadSignature, ConfigError, MalformedWebhook, StaleTimestamp
from hookline.signing import (
    SELZ_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    Verifier,
    selz_signature,
    sign_headers,
    standard_signature,
)
from tests.support.seed_receiver import node_available, seed_signatures

SEED_TOKEN = "WEDAuucHsQQ0D+81S4SizL1MstKQVkHeVTFjHqa7sTnnVVYh"
SEED_TIMESTAMP = "2016-12-02T00:30:50"
KEY = "your_webhook_verification_key"
NOW = 1_480_638_650  # SEED_TIMESTAMP as Unix seconds

needs_node = pytest.mark.skipif(not node_available(), reason="node is not installed")


def _signed(
    keys: list[str], *, unix_ts: int = NOW, data: bytes = b'{"id":"ord_1","total":"9.99"}'
) -> tuple[dict[str, str], bytes]:
    timestamp = format_timestamp(float(unix_ts))
    token = SEED_TOKEN
    body = encode_envelope(
        webhook_id="ep_1",
        event_type="order_completed",
        timestamp=timestamp,
        token=token,
        event_id="evt_1",
        user_id="usr_1",
        data_json=data,
    )
    headers = sign_headers(
        keys, timestamp=timestamp, token=token, msg_id="evt_1", unix_ts=unix_ts, body=body
    )
    return headers, body


# -- (1) the Selz signature is the seed's ------------------------------------------------


def test_seed_example_timestamp_is_now() -> None:
    assert format_timestamp(float(NOW)) == SEED_TIMESTAMP


@needs_node
def test_selz_signature_equals_the_seed_node_algorithm() -> None:
    vectors = [
        (KEY, SEED_TIMESTAMP, SEED_TOKEN),
        ("k", SEED_TIMESTAMP, SEED_TOKEN),
        ("another key with spaces", "2024-02-29T23:59:59", SEED_TOKEN),
        (KEY, "1999-01-01T00:00:00", "A" * 48),
        (KEY, SEED_TIMESTAMP, "+/+/" * 12),
        ("clé-ünïcode-🔑", SEED_TIMESTAMP, SEED_TOKEN),  # both sides read a key as UTF-8
        *((f"key-{i}", SEED_TIMESTAMP, new_token()) for i in range(5)),
    ]
    expected = seed_signatures(vectors)
    assert [selz_signature(k, ts, tok) for k, ts, tok in vectors] == expected


def test_selz_signature_is_base64_of_a_sha256_digest() -> None:
    raw = base64.b64decode(selz_signature(KEY, SEED_TIMESTAMP, SEED_TOKEN), validate=True)
    assert len(raw) == 32


def test_sign_headers_puts_the_first_key_in_the_selz_header() -> None:
    headers, body = _signed(["new", "old"])
    doc = orjson.loads(body)
    assert headers[SELZ_HEADER] == selz_signature("new", doc["timestamp"], doc["token"])


def test_sign_headers_needs_a_key() -> None:
    with pytest.raises(ConfigError):
        sign_headers([], timestamp=SEED_TIMESTAMP, token="t", msg_id="m", unix_ts=NOW, body=b"")


# -- (3) Standard Webhooks libraries verify what we send ---------------------------------


def _now_signed(keys: list[str]) -> tuple[dict[str, str], bytes]:
    # The library checks the timestamp against the real clock; it takes no "now".
    return _signed(keys, unix_ts=int(time.time()))


def whsec(key: str) -> str:
    """A verification key as Standard Webhooks libraries take it: ``whsec_`` and the
    base64 of the key's bytes, which hookline signs with."""
    return "whsec_" + base64.b64encode(key.encode()).decode()


def test_standard_signature_verifies_with_standardwebhooks() -> None:
    headers, body = _now_signed([KEY])
    assert Webhook(whsec(KEY)).verify(body, headers) == orjson.loads(body)


@pytest.mark.parametrize("receiver_key", ["new-key", "old-key"])
def test_standard_signature_verifies_with_either_key_during_rotation(receiver_key: str) -> None:
    headers, body = _now_signed(["new-key", "old-key"])
    assert len(headers[WEBHOOK_SIGNATURE_HEADER].split()) == 2
    Webhook(whsec(receiver_key)).verify(body, headers)


def test_standardwebhooks_rejects_another_key_and_a_changed_body() -> None:
    headers, body = _now_signed([KEY])
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec("someone-else")).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(KEY)).verify(body.replace(b"9.99", b"0.01"), headers)


# -- (4) Verifier ------------------------------------------------------------------------


def test_verifier_accepts_a_genuine_request_and_returns_the_envelope() -> None:
    headers, body = _signed([KEY])
    envelope = Verifier((KEY,)).verify(headers, body, now=NOW)
    assert envelope.event_id == "evt_1"
    assert envelope.token == SEED_TOKEN
    assert envelope.data["id"] == "ord_1"


def test_verifier_reads_headers_in_any_case() -> None:
    headers, body = _signed([KEY])
    upper = {name.upper(): value for name, value in headers.items()}
    Verifier((KEY,), require_standard=True).verify(upper, body, now=NOW)


def test_verifier_refuses_a_seed_style_request_by_default() -> None:
    headers, body = _signed([KEY])
    with pytest.raises(BadSignature, match="webhook-signature header is missing"):
        Verifier((KEY,)).verify({SELZ_HEADER: headers[SELZ_HEADER]}, body, now=NOW)


def test_a_selz_only_verifier_accepts_a_seed_style_request() -> None:
    headers, body = _signed([KEY])
    Verifier((KEY,), require_standard=False).verify(
        {SELZ_HEADER: headers[SELZ_HEADER]}, body, now=NOW
    )


def test_verifier_knows_several_keys_for_rotation() -> None:
    headers, body = _signed(["old"])
    Verifier(("new", "old")).verify(headers, body, now=NOW)


def test_verifier_rejects_a_signature_under_an_unknown_key() -> None:
    headers, body = _signed(["someone-else"])
    with pytest.raises(BadSignature, match=r"webhook-signature does not match .* 2 configured"):
        Verifier((KEY, "other")).verify(headers, body, now=NOW)
    selz_only = {SELZ_HEADER: headers[SELZ_HEADER]}
    with pytest.raises(BadSignature, match=r"X-Selz-Signature does not match .* 2 configured"):
        Verifier((KEY, "other"), require_standard=False).verify(selz_only, body, now=NOW)


def test_verifier_rejects_a_missing_selz_header() -> None:
    headers, body = _signed([KEY])
    del headers[SELZ_HEADER]
    with pytest.raises(BadSignature, match="X-Selz-Signature header is missing"):
        Verifier((KEY,)).verify(headers, body, now=NOW)


@pytest.mark.parametrize(("offset", "word"), [(301, "old"), (-301, "in the future")])
def test_verifier_rejects_a_timestamp_outside_the_window(offset: int, word: str) -> None:
    headers, body = _signed([KEY])
    with pytest.raises(StaleTimestamp, match=rf"timestamp is 301 s {word}.*±300 s"):
        Verifier((KEY,)).verify(headers, body, now=NOW + offset)


def test_verifier_accepts_the_edge_of_the_window() -> None:
    headers, body = _signed([KEY])
    Verifier((KEY,)).verify(headers, body, now=NOW + 300)


def test_verifier_catches_a_tampered_body_through_the_standard_signature() -> None:
    # The Selz signature covers only timestamp + token, so it still matches: this is
    # exactly the weakness the Standard Webhooks header closes.
    headers, body = _signed([KEY])
    tampered = body.replace(b"9.99", b"0.01")
    with pytest.raises(BadSignature, match="body was altered"):
        Verifier((KEY,)).verify(headers, tampered, now=NOW)


def test_strict_verifier_requires_the_standard_signature() -> None:
    headers, body = _signed([KEY])
    del headers[WEBHOOK_SIGNATURE_HEADER]
    with pytest.raises(BadSignature, match="webhook-signature header is missing"):
        Verifier((KEY,), require_standard=True).verify(headers, body, now=NOW)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_verifier_needs_the_other_standard_headers(header: str) -> None:
    headers, body = _signed([KEY])
    del headers[header]
    with pytest.raises(BadSignature, match="needs webhook-id and webhook-timestamp"):
        Verifier((KEY,)).verify(headers, body, now=NOW)


@pytest.mark.parametrize("stamp", ["9" * 400, "1" + "0" * 12])
def test_a_timestamp_of_too_many_digits_is_refused_not_an_overflow(stamp: str) -> None:
    headers, body = _signed([KEY])
    headers["webhook-timestamp"] = stamp
    with pytest.raises(BadSignature, match="is not Unix time in seconds"):
        Verifier((KEY,)).check_headers(headers, now=NOW)
    with pytest.raises(BadSignature, match="is not Unix time in seconds"):
        Verifier((KEY,)).verify(headers, body, now=NOW)


def test_verifier_checks_the_body_signature_before_it_parses_the_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[bytes] = []
    real_parse = signing.parse_envelope

    def spy(body: bytes) -> Envelope:
        parsed.append(body)
        return real_parse(body)

    monkeypatch.setattr(signing, "parse_envelope", spy)
    headers, _ = _signed([KEY])
    with pytest.raises(BadSignature, match="X-Selz-Signature is not a base64"):
        Verifier((KEY,)).verify({SELZ_HEADER: "x"}, b"not json", now=NOW)
    with pytest.raises(BadSignature, match="webhook-signature header is missing"):
        Verifier((KEY,)).verify({SELZ_HEADER: headers[SELZ_HEADER]}, b"not json", now=NOW)
    with pytest.raises(BadSignature, match="body was altered"):
        Verifier((KEY,)).verify(headers, b"not json", now=NOW)
    assert parsed == []
    # A body signed with the key is parsed, and a malformed one is then refused as such.
    unix_ts = int(NOW)
    signed_junk = {
        **headers,
        WEBHOOK_SIGNATURE_HEADER: standard_signature(KEY, "m", unix_ts, b"not json"),
        "webhook-id": "m",
        "webhook-timestamp": str(unix_ts),
    }
    with pytest.raises(MalformedWebhook):
        Verifier((KEY,)).verify(signed_junk, b"not json", now=NOW)
    assert parsed == [b"not json"]


@pytest.mark.parametrize(
    "kwargs", [{"keys": ()}, {"keys": ("",)}, {"keys": ("k",), "tolerance_seconds": 0}]
)
def test_verifier_refuses_a_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Verifier(**kwargs)  # type: ignore[arg-type]


def test_rotation_order_a_receiver_learns_the_new_key_before_the_sender_leads_with_it() -> None:
    # X-Selz-Signature has room for one signature, keys[0]'s; a receiver that still
    # knows only the old key refuses it even though webhook-signature carries both.
    headers, body = _signed(["new", "old"])
    with pytest.raises(BadSignature, match="X-Selz-Signature does not match"):
        Verifier(("old",)).verify(headers, body, now=NOW)
    Verifier(("old", "new")).verify(headers, body, now=NOW)
