"""Publishing inside the platform's own database transaction.

When hookline's tables live in the platform's database (PostgreSQL: a schema of their
own, made by ``hookline migrate --database postgresql://.../db?schema=hookline``; SQLite:
hookline's database file), an event can be written through the connection the platform
already holds, in the transaction that writes the change it announces::

    with conn.transaction():                       # psycopg; any supported driver
        conn.execute("INSERT INTO orders ...")
        hookline.publish(conn, event_type="order_completed", user_id="store-42",
                         data={"id": "o-1"}, event_id="order-o-1-completed")

The commit makes the event and its deliveries visible and wakes the workers (PostgreSQL's
NOTIFY is sent at commit); a rollback leaves no trace. Links to each driver are in
``_links``; the publish itself is the store's (``_publish``).
"""

from hookline.transactional._links import AsyncLink, SyncLink, async_link_for, link_for
from hookline.transactional._publish import (
    DEFAULT_SCHEMA,
    publish,
    publish_async,
    publish_on,
    wake_workers,
)

__all__ = [
    "DEFAULT_SCHEMA",
    "AsyncLink",
    "SyncLink",
    "async_link_for",
    "link_for",
    "publish",
    "publish_async",
    "publish_on",
    "wake_workers",
]
