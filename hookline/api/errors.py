"""One place that turns errors into HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hookline import exceptions as exc
from hookline.front.quotas import retry_after_header

STATUS: list[tuple[type[exc.HooklineError], int]] = [
    (exc.Unauthorized, 401),
    (exc.Forbidden, 403),
    (exc.NotFound, 404),
    (exc.Conflict, 409),
    (exc.RateLimited, 429),
    (exc.TooLarge, 413),
    (exc.ValidationError, 422),
    (exc.StorageUnavailable, 503),
    (exc.StorageError, 500),
    (exc.ConfigError, 500),
]


def error_response(
    status: int, code: str, message: str, *, retry_after: float | None = None, **extra: Any
) -> JSONResponse:
    if retry_after is None and status == 503:
        retry_after = 5
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after else None
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers
    )


class BodyRefused(HTTPException, exc.InvalidJson):
    """A request body that is not JSON, or JSON that breaks a rule (``NaN``, an integer
    beyond 64 bits, nesting too deep): the ``InvalidJson`` raised as FastAPI needs it.
    FastAPI passes an ``HTTPException`` raised while it reads the body through as it is;
    anything else would become a bare 400."""

    def __init__(self, error: exc.InvalidJson) -> None:
        exc.InvalidJson.__init__(self, error.message, malformed=error.malformed)
        HTTPException.__init__(self, 400 if error.malformed else 422, error.message)
        self.code = "malformed_json" if error.malformed else "invalid_request"


def allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods some route takes at this request's path, for ``Allow`` on a 405."""
    matched = [
        route
        for route in app.router.routes
        if route.matches({**request.scope, "method": "\x00"})[0] is not Match.NONE
    ]
    # A fixed path (/events/batch) is its own resource, though /events/{event_id}
    # matches it too.
    exact = [r for r in matched if getattr(r, "path", None) == request.url.path]
    methods: set[str] = set()
    for route in exact or matched:
        methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def response_for(error: exc.HooklineError) -> JSONResponse:
    status = next((s for cls, s in STATUS if isinstance(error, cls)), 500)
    retry_after = error.retry_after if isinstance(error, exc.RateLimited) else None
    return error_response(status, error.code, error.message, retry_after=retry_after)


def install(app: FastAPI) -> None:
    @app.exception_handler(exc.HooklineError)
    async def _hookline(_: Request, error: exc.HooklineError) -> JSONResponse:
        return response_for(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        content_type = request.headers.get("content-type", "")
        has_body = (
            request.headers.get("content-length", "0") != "0"
            or "transfer-encoding" in request.headers
        )
        # A body sent to a route that reads none is ignored, not a wrong media type.
        reads_body = getattr(request.scope.get("route"), "body_field", None) is not None
        if has_body and reads_body and "json" not in content_type:
            return error_response(
                415,
                "unsupported_media_type",
                "send the body as JSON, with Content-Type: application/json",
            )
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        message = "; ".join(_describe(p) for p in problems[:5])
        return error_response(
            422,
            "invalid_request",
            message,
            fields=[_describe(p) for p in problems],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error, BodyRefused):
            return error_response(error.status_code, error.code, error.message)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        response = error_response(error.status_code, code, str(error.detail))
        if error.status_code == 405:
            # Starlette names the methods of the first route that matched the path only;
            # every route at the path counts (GET and POST /apps are two routes).
            response.headers["Allow"] = allowed_methods(app, request)
        return response
