"""HTTP pieces every service uses: the app factory, the AppError family, its handler, and
health routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.guard import ErrorBoundary, RejectControlCharacters
from shared.metrics import render_latest

DOCS_ASSETS_URL = "/docs-assets"


def create_service_app(
    service: str,
    *,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    **kwargs: Any,
) -> FastAPI:
    """Return a service's FastAPI app, with /docs and /redoc served without any CDN.

    Swagger UI and ReDoc load their scripts and styles from this server (the assets come
    with the fastapi-offline package), so the docs work offline and on closed networks.
    """
    app = FastAPIOffline(
        title=title, version="1", lifespan=lifespan, static_url=DOCS_ASSETS_URL, **kwargs
    )
    app.state.service = service
    return app


class AppError(Exception):
    """An error with an HTTP status, rendered as {"error": ClassName, "detail": ...}."""

    status_code = 400

    def __init__(
        self, message: str, *, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message
        self.headers = dict(headers or {})


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class Unprocessable(AppError):
    status_code = 422


class ServiceUnavailable(AppError):
    status_code = 503


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str
    detail: Any


def install_error_handlers(
    app: FastAPI, *, retry_after_seconds: int = 5, check_json_bodies: bool = True
) -> None:
    """Render AppError and validation errors in the one error format; guard every request.

    Control characters in the path, the query or (with `check_json_bodies`) a JSON body's
    strings get 422 naming the field; a database outage gets 503 with Retry-After; any
    other unexpected error gets a 500 in the same format, logged without its message.
    """

    async def app_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return JSONResponse(
            {"error": type(exc).__name__, "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {
                "field": ".".join(str(p) for p in err["loc"]),
                "reason": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        return JSONResponse({"error": "ValidationError", "detail": detail}, status_code=422)

    async def framework_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"error": _FRAMEWORK_ERRORS.get(exc.status_code, "Error"), "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, framework_error)
    app.add_middleware(RejectControlCharacters, check_json_bodies=check_json_bodies)
    app.add_middleware(ErrorBoundary, retry_after_seconds=retry_after_seconds)


_FRAMEWORK_ERRORS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}
ReadinessCheck = Callable[[], Awaitable[bool]]


class Health(BaseModel):
    """Health or readiness, with the result of each check and the service's clock."""

    status: str
    checks: dict[str, bool] = {}
    now: datetime | None = None
    clock_speed: float | None = None


def health_router(checks: Callable[[Request], Mapping[str, ReadinessCheck]]) -> APIRouter:
    """Return `/healthz`, `/readyz` and `/metrics`; `checks` gives the readiness checks."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health)
    async def healthz(request: Request) -> Health:
        """Tell that the process is alive, and what its (possibly simulated) clock shows."""
        rt = getattr(request.app.state, "rt", None)
        if rt is None:
            return Health(status="ok")
        speed = rt.settings.clock_speed if rt.settings.clock_start is not None else 1.0
        return Health(status="ok", now=rt.clock.now(), clock_speed=speed)

    @router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz(request: Request, response: Response) -> Health:
        """Tell whether the service can do its work (database migrated and reachable, broker)."""
        results: dict[str, bool] = {}
        named = dict(checks(request))
        rt = getattr(request.app.state, "rt", None)
        if rt is not None:
            named["migrations"] = rt.migrations_applied
        for name, check in named.items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ok = all(results.values())
        response.status_code = 200 if ok else 503
        return Health(status="ready" if ok else "not_ready", checks=results)

    @router.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Expose Prometheus metrics."""
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    return router


_METHODS = ("get", "put", "post", "delete", "patch")
_UNGUARDED = ("/healthz", "/readyz", "/metrics")
_ERROR_TEXT = {
    400: "The body cannot be parsed (not JSON, or not the documented media type's shape).",
    401: "Missing or invalid credentials (see the security scheme).",
    403: "Authenticated, but not allowed (role, organisation or consent).",
    404: "The resource in the path does not exist.",
    409: "Conflicts with the current state (the detail says which).",
    422: "Invalid input: `detail` lists `{field, reason, type}`; also any path, query or "
    "body string holding a control character such as NUL.",
    503: "The database (or broker) is unavailable; retry after `Retry-After` seconds.",
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


# What the guard refuses (shared.guard.CONTROL), as a JSON Schema pattern.
NO_CONTROL_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"


def document_errors(app: FastAPI, *, forbidden: bool = False, conflicts: bool = False) -> None:
    """Make the OpenAPI document tell the real error answers, all in the `ErrorBody` shape.

    Every operation gets 422 (the real shape, not FastAPI's default) and, but the health
    routes, 503 with Retry-After; secured operations 401 (and 403 with `forbidden`);
    operations with a path parameter 404; writes 409 with `conflicts`. Responses a route
    declares itself are kept. Free strings get the pattern that excludes the control
    characters every service refuses.
    """
    build = app.openapi
    documented: set[int] = set()

    def openapi() -> dict[str, Any]:
        schema = build()
        if id(schema) not in documented:
            _document(schema, forbidden=forbidden, conflicts=conflicts)
            documented.add(id(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(schema: dict[str, Any], *, forbidden: bool, conflicts: bool) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    components["ErrorBody"]["description"] = (
        'Every error: `{"error": "<ClassName>", "detail": <text or list of {field, reason}>}`.'
    )
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for component in components.values():
        _forbid_controls(component, NO_CONTROL_PATTERN)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            for parameter in operation.get("parameters", []):
                _forbid_controls(parameter.get("schema", {}), NO_CONTROL_PATTERN)
            for media, body in operation.get("requestBody", {}).get("content", {}).items():
                if "json" in media and "nd" not in media:  # NDJSON, CSV: refused per line
                    _forbid_controls(body.get("schema", {}), NO_CONTROL_PATTERN)
            codes = {422, 400} if "requestBody" in operation else {422}
            if path not in _UNGUARDED:
                codes.add(503)
            if operation.get("security"):
                codes |= {401, 403} if forbidden else {401}
            if "{" in path:
                codes.add(404)
            if conflicts and method != "get":
                codes.add(409)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                entry = responses.setdefault(str(code), {"description": _ERROR_TEXT[code]})
                if code == 422 or "content" not in entry:
                    entry["content"] = ref
                if code == 503:
                    entry.setdefault("headers", RETRY_AFTER_HEADER)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _forbid_controls(node: Any, pattern: str) -> None:
    """Give every free string of a JSON Schema (no pattern, format or enum) `pattern`."""
    if isinstance(node, list):
        for item in node:
            _forbid_controls(item, pattern)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(node):
        node["pattern"] = pattern
    for key in ("properties", "$defs"):
        for child in (node.get(key) or {}).values():
            _forbid_controls(child, pattern)
    for key in ("items", "anyOf", "allOf", "oneOf", "additionalProperties"):
        if key in node:
            _forbid_controls(node[key], pattern)
