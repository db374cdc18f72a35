"""This process's rate limits on the API and dashboard: failed authentication per client
address, and what one app may ask for how often (see ``hookline.config.RateLimits``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from hookline.config import RATE_ENV, RateLimits
from hookline.exceptions import RateLimited
from hookline.ratelimit import Attempt, Clock, FailureThrottle, RateLimiter

Action = Literal["tests", "recovers", "new_endpoints"]

WHAT: dict[Action, str] = {
    "tests": "test notifications",
    "recovers": "recover calls",
    "new_endpoints": "new endpoints",
}


class Quotas:
    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Clock = time.monotonic,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """``on_refused`` is told the name of the limit (a ``RateLimits`` field) of each
        request refused (the metrics count them)."""
        self.limits = limits
        self.on_refused = on_refused or (lambda limit: None)
        self.auth = FailureThrottle(limits.auth_failures, clock=clock)
        self._per_app: dict[Action, RateLimiter] = {}
        for action in WHAT:
            rate = getattr(limits, action)
            if rate is not None:
                self._per_app[action] = RateLimiter(rate, clock=clock)

    def charge(self, app_id: str | None, action: Action) -> None:
        """Count one ``action`` of the app, or raise ``RateLimited`` (a 429) past its
        limit. The admin (``app_id`` None) is not limited."""
        limiter = self._per_app.get(action)
        if app_id is None or limiter is None:
            return
        wait = limiter.hit(app_id)
        if wait:
            self.on_refused(action)
            raise RateLimited(
                f"this app has sent too many {WHAT[action]}: at most {limiter.rate} "
                f"({RATE_ENV[action]}); try again in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def sign_in(self, address: str, secret: str) -> Attempt:
        """Start an authentication attempt (see ``FailureThrottle``): raise
        ``RateLimited`` if ``address`` failed too often of late and ``secret`` has not
        succeeded from there before."""
        attempt = self.auth.attempt(address, secret)
        if attempt.wait:
            self.on_refused("auth_failures")
            raise RateLimited(
                f"too many failed sign-ins from your address: at most {self.limits.auth_failures}"
                f" ({RATE_ENV['auth_failures']}); try again in {math.ceil(attempt.wait)} s",
                retry_after=attempt.wait,
            )
        return attempt


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up: a client that waits that long is
    let through."""
    return str(max(1, math.ceil(seconds)))
