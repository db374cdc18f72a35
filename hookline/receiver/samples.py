"""Signed sample webhooks for ``hookline send-test``; the sample data itself lives in
``hookline.samples``, shared with the sender."""

from __future__ import annotations

import secrets
import time

import orjson

from hookline.events import encode_envelope, format_timestamp, new_token
from hookline.samples import SELZ_ORDER, sample_data
from hookline.signing import sign_headers


def signed_sample(
    keys: list[str],
    event_type: str,
    *,
    user_id: str = "test-user",
    data_json: bytes | None = None,
    now: float | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a correctly signed sample webhook, as hookline's sender sends it."""
    unix_ts = int(time.time() if now is None else now)
    timestamp = format_timestamp(float(unix_ts))
    token = new_token()
    event_id = "evt_test_" + secrets.token_hex(8)
    body = encode_envelope(
        webhook_id="send-test",
        event_type=event_type,
        timestamp=timestamp,
        token=token,
        event_id=event_id,
        user_id=user_id,
        data_json=data_json if data_json is not None else orjson.dumps(sample_data(event_type)),
    )
    headers = sign_headers(
        keys, timestamp=timestamp, token=token, msg_id=event_id, unix_ts=unix_ts, body=body
    )
    return {**headers, "Content-Type": "application/json"}, body


__all__ = ["SELZ_ORDER", "sample_data", "signed_sample"]
