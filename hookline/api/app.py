"""The REST API's application: /api/v1, health, metrics, the OpenAPI document.

``hookline.server`` builds it, gives it the store and the engine, and mounts the
dashboard beside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.types import Lifespan

from hookline import __version__
from hookline.api import errors, routes, types
from hookline.api.auth import RequireAuth
from hookline.api.common import errors as error_answers
from hookline.api.limits import BodyLimit
from hookline.api.publish_path import PublishPath
from hookline.api.schemas import HealthOut
from hookline.config import Limits
from hookline.metrics import SenderMetrics
from hookline.serving import ServerSettings

#: The Prometheus text format, as ``prometheus_client`` writes it.
METRICS_TYPE = "text/plain; version=0.0.4"


def create_api(
    *, lifespan: Lifespan[FastAPI] | None = None, server: ServerSettings | None = None
) -> FastAPI:
    """The API's application: /api/v1, /healthz, /metrics and the documents at /docs.

    It reads what ``hookline.server`` (which also mounts the dashboard on it) leaves in
    its state: the store, the quotas, the admin token, the metrics, the engine or the
    delivery processes; ``lifespan`` is the server's, which opens and closes them.
    """
    server = server or ServerSettings()

    # FastAPIOffline serves /docs and /redoc with their scripts from the package
    # (/static-offline-docs), so the API's documentation works without the internet.
    app = FastAPIOffline(
        title="hookline",
        version=__version__,
        summary="Signed, retried, ordered webhooks for Selz apps.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    errors.install(app)
    app.include_router(routes.router)
    # Added first, so it runs last of the middleware: after the caller is known and
    # within the body limits.
    app.add_middleware(PublishPath, prefix=routes.router.prefix)
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
        metrics: SenderMetrics = request.app.state.metrics
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
