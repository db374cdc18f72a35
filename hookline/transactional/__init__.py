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

What it holds, and what it costs:

- The event's lane (its user, on each ordered endpoint) is locked from the publish to
  the caller's commit or rollback: a later publish for the same user, through the API
  or another transaction, waits for it, and so does a worker recording an attempt on
  that lane (with the rest of its batch). That is what keeps one user's webhooks in
  commit order; keep such transactions short, and publish last, just before the
  commit. Two transactions that publish for two users in opposite orders may
  deadlock; PostgreSQL then fails one of them (a ``StorageError``), to be retried like
  any transaction that lost a deadlock.
- PostgreSQL serialises the commits of transactions that sent a NOTIFY (a lock on the
  notification queue, held through the commit's flush): many small transactions that
  each publish commit one after another, where the API gathers concurrent publishes
  into one commit. ``bench/transactional_publish.py`` measures both.
- On SQLite the caller's transaction holds the database's write lock, which hookline's
  engines need too; and nothing there tells hookline of the commit: call
  ``wake_workers(conn)`` after it, or the engines find the deliveries at their next
  poll (``HOOKLINE_POLL_INTERVAL``, 0.5 s by default).
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
