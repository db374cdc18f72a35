"""The parts of the running server that the API's and the dashboard's handlers use.

``hookline.server`` builds them and leaves them in the application's state: ``store``,
``publisher``, ``engine`` (None where other processes deliver) or ``deliverers`` (the
delivery processes), ``quotas``, ``settings``, ``metrics``, ``tracing`` and
``admin_token``. These functions read the shared ones from a request, in one place.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request

from hookline.front.quotas import Action, Quotas
from hookline.store import Store

log = logging.getLogger("hookline.api")


def store(request: Request) -> Store:
    found: Store = request.app.state.store
    return found


def charge(request: Request, app_id: str | None, action: Action) -> None:
    """Count one ``action`` against the app's rate limit (429 past it; the admin, with
    ``app_id`` None, is not limited)."""
    quotas: Quotas = request.app.state.quotas
    quotas.charge(app_id, action)


def wake_engine(request: Request) -> None:
    """A delivery became due now: tell this process's engine, and those of the other
    processes (the delivery processes of ``serve``, workers) that listen."""
    engine = request.app.state.engine
    if engine is not None:
        engine.wake()
    task = asyncio.create_task(store(request).wake_engines())
    # Kept until done (the loop holds tasks weakly); a failed wake-up only means a poll.
    _waking.add(task)
    task.add_done_callback(_woken)


_waking: set[asyncio.Task[None]] = set()


def _woken(task: asyncio.Task[None]) -> None:
    _waking.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("waking the engines failed: %s", task.exception())
