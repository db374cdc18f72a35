"""Storage: one interface (``Store``), SQLite and PostgreSQL behind it."""

from hookline.store.manager import Store
from hookline.store.records import AttemptResult, Claimed, Job, NewEvent, Published

__all__ = ["AttemptResult", "Claimed", "Job", "NewEvent", "Published", "Store"]
