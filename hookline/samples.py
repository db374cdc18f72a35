"""A plausible ``data`` object for each of the 19 event types.

Neutral catalog data both sides use: the sender's test notifications and health probes,
the receiver's ``hookline send-test``. The order is the one Selz published (completed
where the public copy breaks off); the others carry the fields their models declare.
"""

from __future__ import annotations

import copy
from typing import Any

from hookline.events import check_event_type

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
