"""The receiver's settings: one immutable object with documented defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hookline.config import RetryPolicy
from hookline.exceptions import ConfigError
from hookline.signing import DEFAULT_TOLERANCE_SECONDS

#: Where the inbox lives unless told otherwise: a SQLite file in the working directory.
DEFAULT_INBOX_URL = "sqlite:///./hookline-inbox.db"
INBOX_URL_ENV = "HOOKLINE_INBOX_URL"

#: A failing handler runs again after 1 s, 5 s, 30 s, 2 min, 10 min, 30 min and 1 h, and
#: then becomes a dead letter: eight runs in all, spread over close to two hours.
DEFAULT_HANDLER_RETRY = RetryPolicy(schedule=(0, 1, 5, 30, 120, 600, 1800, 3600), jitter=0.1)


def inbox_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return explicit or env.get(INBOX_URL_ENV) or DEFAULT_INBOX_URL


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """How a receiver verifies, stores and works through webhooks."""

    #: The inbox database: ``sqlite:///path`` (default) or ``postgresql://...``.
    database: str = DEFAULT_INBOX_URL
    #: How far a webhook's timestamp may be from this clock, either way.
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    #: Refuse webhooks without a valid Standard Webhooks signature (which covers the body).
    #: False accepts requests signed only with X-Selz-Signature, which does not cover the
    #: body: see docs/receiver.md, "Modes".
    require_standard: bool = True
    #: Largest body accepted; larger requests get 413 and are not read further.
    max_body_bytes: int = 1024 * 1024
    #: When a failing handler runs again, and how many runs before it is a dead letter.
    retry: RetryPolicy = field(default_factory=lambda: DEFAULT_HANDLER_RETRY)
    #: Users whose webhooks are handled at the same time by this process.
    concurrency: int = 32
    #: How long a process holds a user's lane without renewing it; after that (it died)
    #: another process takes the lane over.
    lease_seconds: float = 30.0
    #: How often workers look for due work that nothing in this process announced
    #: (retries coming due, webhooks accepted by another process).
    poll_interval: float = 0.5
    #: How long handled webhooks (and so their tokens, for duplicate detection) are kept.
    retention_seconds: float = 7 * 24 * 3600.0
    #: On shutdown, how long running handlers may take to finish before being cancelled.
    shutdown_grace: float = 30.0

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise ConfigError("max_body_bytes must be positive")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.lease_seconds <= 0 or self.poll_interval <= 0:
            raise ConfigError("lease_seconds and poll_interval must be positive")
