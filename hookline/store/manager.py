"""Everything hookline keeps, as operations: ``Store``, the one object every caller uses.

The API, the delivery engine and the CLI call its methods; the connector below runs the
named SQL of whichever dialect the database URL chose. Batches are passed to SQL as one
JSON array, so publishing 1,000 events or recording 1,000 attempts costs a handful of
statements, in one transaction.

Its operations live in one module per resource, each a class over ``StoreBase`` (the
connection, the limits, the key box): ``apps``, ``installations``, ``endpoints``
(settings, health, statistics), ``rotation`` (verification keys, resealing),
``publishing`` (events and their fan-out), ``claims`` (the engine's claims and records)
and ``deliveries`` (reading them, sending them again, test sends). ``Store`` is only
their sum. Mixins rather than one object per resource held by the store: every caller
keeps calling ``store.create_endpoint(...)``, with no forwarding method written twice,
and each module still reads alone. A resource that starts from another's lookup
extends that one (an installation or an endpoint checks its app; a test send reads its
endpoint), so each call between them is an ordinary, type-checked method call.
"""

from __future__ import annotations

from hookline.store.claims import Claims
from hookline.store.deliveries import Deliveries
from hookline.store.installations import Installations
from hookline.store.publishing import Publishing
from hookline.store.rotation import Rotation


class Store(Installations, Rotation, Deliveries, Publishing, Claims):
    """``keys`` seals verification keys at rest (``KeyBox.from_env()`` when not given:
    sealed when ``HOOKLINE_MASTER_KEY`` is set, in the clear otherwise). ``limits`` bound
    what one app may ask for (``Limits.from_env()`` when not given)."""
