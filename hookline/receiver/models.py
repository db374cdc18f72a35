"""Typed models of ``data`` for the 19 event types.

Selz published one payload, an order (``order_payment_succeeded``); ``Order``, ``Customer``,
``Address`` and ``OrderItem`` follow it field for field. The other resources are known only
by their names, so their models type the fields they are sure to have and keep the rest:
every model allows fields it does not declare (``model_extra``), and every field but
``id`` may be missing, because a ``*_deleted`` event may carry little more than the id.

    order = event.model()          # an Order for order_* events
    order.customer.email
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from hookline.events import EVENT_TYPES, check_event_type


class Resource(BaseModel):
    """What every ``data`` object has: an id; anything else is kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Address(_Part):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    post_code: str | None = None
    state_code: str | None = None
    country_code: str | None = None


class Customer(Resource):
    # Selz writes "0001-01-01T00:00:00" for an unknown time, which is not a useful
    # datetime: the wire string is kept as it is.
    created_time: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company: str | None = None
    delivery_address: Address | None = None
    billing_address: Address | None = None


class OrderItem(_Part):
    product_id: str | None = None
    product_title: str | None = None
    product_variant_title: str | None = None
    discount_code: str | None = None
    quantity: int | None = None


class Order(Resource):
    reference_id: str | None = None
    customer: Customer | None = None
    items: list[OrderItem] = []


class Product(Resource):
    title: str | None = None


class ProductVariant(Resource):
    product_id: str | None = None
    title: str | None = None


class Category(Resource):
    title: str | None = None


class Discount(Resource):
    code: str | None = None


class BlogPost(Resource):
    title: str | None = None


def _model_for(event_type: str) -> type[Resource]:
    if event_type == "product_variant_soldout":
        return ProductVariant
    prefixes: dict[str, type[Resource]] = {
        "blog_post_": BlogPost,
        "category_": Category,
        "customer_": Customer,
        "discount_": Discount,
        "order_": Order,
        "product_": Product,
    }
    return next(model for prefix, model in prefixes.items() if event_type.startswith(prefix))


#: The model of ``data`` for each of the 19 event types.
MODELS: dict[str, type[Resource]] = {t: _model_for(t) for t in EVENT_TYPES}


def parse_data(event_type: str, data: dict[str, Any]) -> Resource:
    """``data`` of an ``event_type`` webhook as its model (pydantic's ValidationError if wrong)."""
    return MODELS[check_event_type(event_type)].model_validate(data)
