"""A plausible ``data`` object for each of the 19 event types, for ``hookline send-test``.

The order is the one Selz published (completed where the public copy breaks off); the
others carry the fields their models declare.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

import orjson

from hookline.events import check_event_type, encode_envelope, format_timestamp, new_token
from hookline.signing import sign_headers

_ADDRESS = {
    "line1": "1 Infinite Loop",
    "line2": None,
    "city": "Cupertino",
    "post_code": "95014",
    "state_code": "CA",
    "country_code": "US",
}

SELZ_ORDER: dict[str, Any] = {
    "id": "5840c0bae707b10aa48d55c5",
    "reference_id": "XZHQ59WA",
    "customer": {
        "id": "5840c0bae707b10aa48d55c6",
        "created_time": "0001-01-01T00:00:00",
        "first_name": "John",
        "last_name": "Doe",
        "email": "support@selz.com",
        "company": "Doe & Co",
        "delivery_address": _ADDRESS,
        "billing_address": _ADDRESS,
    },
    "items": [
        {
            "product_id": "5840c0bae707b10aa48d55c7",
            "product_title": "Example",
            "product_variant_title": None,
            "discount_code": None,
            "quantity": 1,
        }
    ],
}

_BY_PREFIX: dict[str, dict[str, Any]] = {
    "blog_post_": {"id": "5840c0bae707b10aa48d55d1", "title": "Spring collection is here"},
    "category_": {"id": "5840c0bae707b10aa48d55d2", "title": "Prints"},
    "customer_": SELZ_ORDER["customer"],
    "discount_": {"id": "5840c0bae707b10aa48d55d3", "code": "SPRING10"},
    "order_": SELZ_ORDER,
    "product_variant_": {
        "id": "5840c0bae707b10aa48d55d4",
        "product_id": "5840c0bae707b10aa48d55c7",
        "title": "Large",
    },
    "product_": {"id": "5840c0bae707b10aa48d55c7", "title": "Example"},
}


def sample_data(event_type: str) -> dict[str, Any]:
    check_event_type(event_type)
    found = next(data for prefix, data in _BY_PREFIX.items() if event_type.startswith(prefix))
    return copy.deepcopy(found)


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
