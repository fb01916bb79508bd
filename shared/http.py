"""HTTP pieces every service uses: the AppError family, its handler, and health routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.guard import ErrorBoundary, RejectControlCharacters
from shared.metrics import render_latest


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

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(RejectControlCharacters, check_json_bodies=check_json_bodies)
    app.add_middleware(ErrorBoundary, retry_after_seconds=retry_after_seconds)


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
        """Tell whether the service can do its work (database, broker reachable)."""
        results: dict[str, bool] = {}
        for name, check in checks(request).items():
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
