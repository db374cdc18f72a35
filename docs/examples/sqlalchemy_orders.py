"""SQLAlchemy: the order and its webhook in one transaction of the session."""

from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import hookline


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(primary_key=True)
    store_id: Mapped[str]
    total: Mapped[int]


def complete_order(session: Session, order_id: str, store_id: str, total: int) -> Order:
    with session.begin():
        order = Order(id=order_id, store_id=store_id, total=total)
        session.add(order)
        hookline.publish(
            session,
            event_type="order_completed",
            user_id=store_id,  # the store whose installed apps hear of it
            data={"id": order.id, "total": order.total},
            event_id=f"order-{order.id}-completed",  # the same order, the same event
        )
        # An exception from here to the end of the block rolls back both.
    return order
