"""Typed models: Selz's published order parses, unknown fields are kept, all 19 types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hookline.events import EVENT_TYPES
from hookline.exceptions import ValidationError as HooklineValidationError
from hookline.receiver.models import MODELS, Order, ProductVariant, parse_data
from hookline.receiver.samples import sample_data

# Selz's published example order, kept beside the tests.
SEED = Path(__file__).resolve().parents[2] / "fixtures/order_payment_succeeded.example.json"


def _seed_order() -> dict[str, object]:
    if SEED.exists():
        return dict(json.loads(SEED.read_text())["data"])
    from hookline.receiver.samples import SELZ_ORDER

    return SELZ_ORDER


def test_selz_example_order_parses_field_for_field() -> None:
    order = parse_data("order_payment_succeeded", _seed_order())
    assert isinstance(order, Order)
    assert order.reference_id == "XZHQ59WA"
    assert order.customer is not None and order.customer.email == "support@selz.com"
    assert order.customer.delivery_address is not None
    assert order.customer.delivery_address.city == "Cupertino"
    assert order.items[0].product_title == "Example" and order.items[0].quantity == 1


def test_unknown_fields_are_kept_not_refused() -> None:
    data = {**_seed_order(), "total": "9.99", "currency_code": "USD"}
    data["items"] = [{**data["items"][0], "price": "9.99"}]  # type: ignore[index]
    order = parse_data("order_completed", data)
    assert order.model_extra == {"total": "9.99", "currency_code": "USD"}
    assert isinstance(order, Order) and order.items[0].model_extra == {"price": "9.99"}


def test_every_type_has_a_model_and_a_sample_that_fits_it() -> None:
    assert sorted(MODELS) == sorted(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        assert parse_data(event_type, sample_data(event_type)).id
    assert MODELS["product_variant_soldout"] is ProductVariant


def test_a_deleted_resource_may_carry_only_its_id() -> None:
    assert parse_data("customer_deleted", {"id": "c1"}).id == "c1"


def test_data_without_an_id_or_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_data("product_created", {"title": "no id"})
    with pytest.raises(HooklineValidationError):
        parse_data("order_teleported", {"id": "x"})
