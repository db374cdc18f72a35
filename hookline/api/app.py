"""The ASGI application of ``hookline serve``: REST API, health, metrics, dashboard.

The lifespan owns the store, the publisher and (unless ``deliver`` is off) the
deliveries: ``delivery_processes`` child processes that deliver beside this one
(``hookline.sender.processes``), or with none, a delivery engine in the same event
loop. Either way ``serve`` alone is a whole sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from hookline import __version__, web
from hookline.api import errors, routes, types
from hookline.api.auth import RequireAuth
from hookline.api.common import errors as error_answers
from hookline.api.limits import BodyLimit
from hookline.api.publish_path import PublishPath
from hookline.api.quotas import Quotas
from hookline.api.schemas import HealthOut
from hookline.config import EngineSettings, Limits, RateLimits, check_admin_token
from hookline.metrics import SenderMetrics
from hookline.sender import Engine
from hookline.sender.processes import DeliveryProcesses
from hookline.sender.publisher import Publisher
from hookline.serving import ServerSettings
from hookline.store import Store

if TYPE_CHECKING:
    from hookline.sender.tracing import SenderTracing

log = logging.getLogger("hookline.api")

#: The Prometheus text format, as ``prometheus_client`` writes it.
METRICS_TYPE = "text/plain; version=0.0.4"


def create_api(
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
    """The API. ``tracing`` is the OpenTelemetry tracing of publishes and attempts
    (``SenderTracing.from_env()`` where an OTLP endpoint is configured; None: off).
    ``delivery_processes`` children running ``delivery_command`` deliver, when both
    are given; otherwise (and with ``deliver`` on) an engine in this process does."""
    check_admin_token(admin_token)
    settings = settings or EngineSettings()
    server = server or ServerSettings()
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

    # FastAPIOffline serves /docs and /redoc with their scripts from the package
    # (/static-offline-docs), so the API's documentation works without the internet.
    app = FastAPIOffline(
        title="hookline",
        version=__version__,
        summary="Signed, retried, ordered webhooks for Selz apps.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.admin_token = admin_token
    app.state.settings = settings
    app.state.quotas = Quotas(rate_limits or RateLimits(), on_refused=metrics.refused)
    app.state.metrics = metrics
    app.state.tracing = tracing
    app.state.deliverers = None
    errors.install(app)
    app.include_router(routes.router)
    # Added first, so it runs last of the middleware: after the caller is known and
    # within the body limits.
    app.add_middleware(PublishPath, prefix=routes.router.prefix)
    web.install(app)
    batch = f"{routes.router.prefix}/events/batch"
    app.add_middleware(
        BodyLimit, default=server.max_body_bytes, routes={batch: server.max_batch_body_bytes}
    )
    # Added last, so it runs first: nobody without a token gets a body read at all.
    app.add_middleware(RequireAuth, prefix=routes.router.prefix)

    @app.get("/healthz", response_model=HealthOut, tags=["operations"])
    async def get_health(request: Request) -> dict[str, Any]:
        engine = request.app.state.engine or request.app.state.deliverers
        return {
            "status": "ok",
            "version": __version__,
            "delivering": engine is not None,
            "in_flight": engine.in_flight if engine else 0,
        }

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {
                "description": "The Prometheus text exposition format.",
                "content": {METRICS_TYPE: {"schema": {"type": "string"}}},
            },
            **error_answers(503),
        },
    )
    async def get_metrics(request: Request) -> Response:
        store = request.app.state.store
        return Response(
            metrics.render(await store.metrics_snapshot()),
            media_type=f"{METRICS_TYPE}; charset=utf-8",
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _operation_id(route: APIRoute) -> str:
    """The handler's name (``create_app``, ``list_deliveries``): readable, and what a
    generated client calls the method."""
    return route.name


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the components the input rules refer to by name, with
    the bounds this server is configured with."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(types.COMPONENTS)
        store = getattr(app.state, "store", None)
        limits = store.limits if store is not None else Limits.from_env()
        for name in ("EndpointIn", "EndpointPatch"):
            fields = schemas[name]["properties"]
            _bound(fields["timeout"], limits.max_timeout, "HOOKLINE_MAX_TIMEOUT")
            _bound(fields["max_in_flight"], limits.max_in_flight, "HOOKLINE_MAX_IN_FLIGHT")
        app.openapi_schema = document
    return app.openapi_schema


def _bound(field: dict[str, Any], maximum: float, variable: str) -> None:
    """Lower a field's documented maximum to the limit the store holds it to."""
    for part in [field, *field.get("anyOf", ())]:
        if "maximum" in part:
            part["maximum"] = min(part["maximum"], maximum)
    field["description"] = (
        field.get("description", "") + f" At most {maximum:g} on this server ({variable})."
    ).strip()
