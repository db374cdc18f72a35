"""A Django view's work: the order and its webhook in one transaction."""

from django.db import connection, models, transaction

import hookline


class Order(models.Model):
    id = models.CharField(primary_key=True, max_length=64)
    store_id = models.CharField(max_length=64)
    total = models.IntegerField()

    class Meta:
        app_label = "shop"


def complete_order(order_id: str, store_id: str, total: int) -> Order:
    with transaction.atomic():
        order = Order.objects.create(id=order_id, store_id=store_id, total=total)
        hookline.publish(
            connection,
            event_type="order_completed",
            user_id=store_id,  # the store whose installed apps hear of it
            data={"id": order.id, "total": order.total},
            event_id=f"order-{order.id}-completed",  # the same order, the same event
        )
        # An exception from here to the end of the block rolls back both.
    return order
