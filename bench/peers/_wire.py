"""The webhook the peers send, built from SPEC.md alone (no hookline import).

Peers must send what hookline sends, or the comparison is unfair: the Selz body, a fresh
48-character token, ``X-Selz-Signature`` (base64 HMAC-SHA256 of timestamp + token) and
the Standard Webhooks headers (HMAC-SHA256 of ``id.timestamp.body``). Every request is
built and signed when it is sent, as a real sender must.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

Dumps = Callable[[Any], bytes]

SAMPLE_DATA: dict[str, Any] = {
    "id": "ord_1001",
    "currency": "USD",
    "total": "49.00",
    "customer": {"id": "cus_7", "email": "buyer@example.com"},
    "items": [{"id": "itm_1", "product_id": "prd_3", "title": "Poster", "quantity": 1}],
}


def stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def build_webhook(
    key: str,
    *,
    event_id: str,
    user_id: str = "usr_1",
    event_type: str = "order_payment_succeeded",
    webhook_id: str = "ep_bench",
    data: dict[str, Any] | None = None,
    dumps: Dumps = stdlib_dumps,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one signed attempt; ``webhook-id`` is the event id."""
    unix_ts = int(time.time())
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_ts))
    token = base64.b64encode(secrets.token_bytes(36)).decode()
    body = dumps(
        {
            "webhook_id": webhook_id,
            "event_type": event_type,
            "timestamp": timestamp,
            "token": token,
            "event_id": event_id,
            "user_id": user_id,
            "data": SAMPLE_DATA if data is None else data,
        }
    )
    raw_key = key.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Selz-Signature": _b64_hmac(raw_key, (timestamp + token).encode("ascii")),
        "webhook-id": event_id,
        "webhook-timestamp": str(unix_ts),
        "webhook-signature": "v1," + _b64_hmac(raw_key, f"{event_id}.{unix_ts}.".encode() + body),
    }
    return headers, body
