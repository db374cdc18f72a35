"""Storage: one interface (``Store``), SQLite and PostgreSQL behind it."""

from hookline.store.manager import Store
from hookline.store.records import (
    App,
    Attempt,
    AttemptResult,
    Claimed,
    Delivery,
    Disabled,
    Endpoint,
    Event,
    Installation,
    Job,
    NewEvent,
    Probe,
    Published,
    Tally,
)

__all__ = [
    "App",
    "Attempt",
    "AttemptResult",
    "Claimed",
    "Delivery",
    "Disabled",
    "Endpoint",
    "Event",
    "Installation",
    "Job",
    "NewEvent",
    "Probe",
    "Published",
    "Store",
    "Tally",
]
