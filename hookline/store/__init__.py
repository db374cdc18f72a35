"""Storage: one interface (``Store``), SQLite and PostgreSQL behind it."""

from hookline.store.manager import Store
from hookline.store.records import (
    App,
    Attempt,
    AttemptResult,
    Claimed,
    Delivery,
    Endpoint,
    Installation,
    Job,
    NewEvent,
    Published,
)

__all__ = [
    "App",
    "Attempt",
    "AttemptResult",
    "Claimed",
    "Delivery",
    "Endpoint",
    "Installation",
    "Job",
    "NewEvent",
    "Published",
    "Store",
]
