"""The staff console: server-rendered pages over the cases, notifier, rules and ingest APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from services.console.clients import BackendError, Backends
from services.console.config import ConsoleSettings
from services.console.render import render
from services.console.routes import auth, cases, dashboard, tasks
from services.console.session import CsrfFailed, NotAllowed, SignInRequired
from shared.clock import Clock, clock_from_settings
from shared.http import DOCS_ASSETS_URL, create_service_app, health_router

log = structlog.get_logger()
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "bokvar_console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
)
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def create_app(settings: ConsoleSettings, *, clock: Clock | None = None) -> FastAPI:
    """Build the console; its lifespan owns the HTTP clients of the other services."""
    the_clock = clock or clock_from_settings(
        settings.clock_start, settings.clock_epoch, settings.clock_speed
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends(settings, the_clock)
        try:
            yield
        finally:
            await app.state.backends.aclose()
            log.info("runtime.stopped", service="console")

    app = create_service_app("console", title="Bokvar staff console", lifespan=lifespan)
    app.state.settings = settings
    app.state.oauth = auth.oauth_client(settings)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.console_session_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.console_session_hours * 3600),
        same_site="lax",
        https_only=not settings.loopback,
    )
    app.middleware("http")(_security_headers)
    _install_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def checks(request: Request) -> dict[str, object]:
        async def services() -> bool:
            api: Backends = request.app.state.backends
            for client in api.http.values():
                if (await client.get("/healthz")).status_code != 200:
                    return False
            return True

        return {"services": services}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    for module in (auth, tasks, cases, dashboard):
        app.include_router(module.router)
    return app


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    # Swagger UI and ReDoc (served offline from DOCS_ASSETS_URL) start with an inline script.
    docs = request.url.path in ("/docs", "/redoc") or request.url.path.startswith(DOCS_ASSETS_URL)
    response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _install_handlers(app: FastAPI) -> None:
    async def sign_in_required(request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    async def not_allowed(request: Request, _exc: Exception) -> Response:
        return render(request, "error.html", status=403, message="error.forbidden")

    async def csrf_failed(request: Request, _exc: Exception) -> Response:
        log.warning("console.csrf_refused", method=request.method)
        return render(request, "error.html", status=403, message="error.csrf")

    async def backend_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendError)
        log.warning("console.backend_error", service=exc.service, status=exc.status)
        status = exc.status if exc.status in (403, 404, 409, 422) else 502
        message = {403: "error.forbidden", 404: "error.not_found"}.get(status, "error.backend")
        return render(request, "error.html", status=status, message=message, error=exc)

    async def invalid_form(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = [{"field": str(err["loc"][-1]), "reason": err["msg"]} for err in exc.errors()]
        error = BackendError("console", 422, detail)
        return render(request, "error.html", status=422, message="error.form", error=error)

    app.add_exception_handler(RequestValidationError, invalid_form)
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(NotAllowed, not_allowed)
    app.add_exception_handler(CsrfFailed, csrf_failed)
    app.add_exception_handler(BackendError, backend_error)
