"""The application ``hookline serve`` runs: where the API, the dashboard and the
deliveries are put together, and the one module that knows all three.

The API (``hookline.api``) and the dashboard (``hookline.web``) do not import each
other; they share what ``hookline.front`` holds, and read the parts built here from the
application's state. The lifespan owns the store, the publisher and (unless ``deliver``
is off) the deliveries: ``delivery_processes`` child processes that deliver beside this
one (``hookline.sender.processes``), or with none, a delivery engine in the same event
loop. Either way ``serve`` alone is a whole sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from hookline import web
from hookline.api.app import create_api
from hookline.config import EngineSettings, RateLimits, check_admin_token
from hookline.front.quotas import Quotas
from hookline.metrics import SenderMetrics
from hookline.sender import Engine
from hookline.sender.processes import DeliveryProcesses
from hookline.sender.publisher import Publisher
from hookline.serving import ServerSettings
from hookline.store import Store

if TYPE_CHECKING:
    from hookline.sender.tracing import SenderTracing


def create_server(
    *,
    database_url: str,
    admin_token: str,
    settings: EngineSettings | None = None,
    rate_limits: RateLimits | None = None,
    deliver: bool = True,
    server: ServerSettings | None = None,
    tracing: SenderTracing | None = None,
    delivery_command: Sequence[str] = (),
    delivery_processes: int = 0,
) -> FastAPI:
    """The API and the dashboard over one store. ``tracing`` is the OpenTelemetry
    tracing of publishes and attempts (``SenderTracing.from_env()`` where an OTLP
    endpoint is configured; None: off). ``delivery_processes`` children running
    ``delivery_command`` deliver, when both are given; otherwise (and with ``deliver``
    on) an engine in this process does."""
    check_admin_token(admin_token)
    settings = settings or EngineSettings()
    metrics = SenderMetrics()
    children = deliver and delivery_processes > 0 and bool(delivery_command)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.open(database_url)
        engine = (
            Engine(store, settings, observers=[metrics], tracing=tracing)
            if deliver and not children
            else None
        )
        app.state.store = store
        app.state.engine = engine
        app.state.publisher = Publisher(store, on_published=engine.wake if engine else None)
        if engine is not None:
            await engine.start()
        if children:
            app.state.deliverers = DeliveryProcesses(
                delivery_command, delivery_processes, metrics=metrics
            )
            await app.state.deliverers.start()
        try:
            yield
        finally:
            if engine is not None:
                await engine.stop()
            if app.state.deliverers is not None:
                await app.state.deliverers.stop()
            await store.close()
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)

    app = create_api(lifespan=lifespan, server=server)
    app.state.admin_token = admin_token
    app.state.settings = settings
    app.state.quotas = Quotas(rate_limits or RateLimits(), on_refused=metrics.refused)
    app.state.metrics = metrics
    app.state.tracing = tracing
    app.state.deliverers = None
    web.install(app)
    return app
