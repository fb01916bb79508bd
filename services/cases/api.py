"""HTTP API of the cases service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.cases.anchoring import start_anchor_loop
from services.cases.config import CasesSettings
from services.cases.consumer import TOPICS, make_handler
from services.cases.engine import RuleViolation
from services.cases.models import inbox, outbox
from services.cases.retention import start_retention_loop
from services.cases.routes import admin, cases, records, reports
from shared.clock import Clock
from shared.http import create_service_app, document_errors, health_router, install_error_handlers
from shared.runtime import Runtime, service_runtime

_ERROR_NAMES = {403: "Forbidden", 409: "Conflict", 422: "Unprocessable"}


def create_app(
    settings: CasesSettings, *, clock: Clock | None = None, bootstrap_servers: str | None = None
) -> FastAPI:
    """Build the cases app; its lifespan owns the database, producer and consumers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(
            settings, "cases", clock=clock, bootstrap_servers=bootstrap_servers
        ) as rt:
            app.state.rt = rt
            rt.outbox_relay(outbox)
            if settings.cases_consume:
                await rt.start_consumer(
                    topics=TOPICS, handler=make_handler(rt.clock), inbox=inbox, outbox=outbox
                )
            start_retention_loop(
                rt,
                retention_days=settings.cases_retention_days,
                interval=settings.cases_retention_interval_seconds,
            )
            start_anchor_loop(rt, interval=settings.cases_audit_anchor_interval_seconds)
            yield

    app = create_service_app(
        "cases",
        title="Bokvar cases",
        lifespan=lifespan,
        description="Cases, referrals, consent, payment plans, meetings, audit and reports. "
        "Every endpoint but health needs `Authorization: Bearer <JWT>`; send "
        "`X-Audit-Reason` to say why (it is recorded in the audit chain).",
    )
    app.state.settings = settings
    install_error_handlers(app)

    async def rule_violation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RuleViolation)
        name = _ERROR_NAMES.get(exc.status, "Conflict")
        return JSONResponse({"error": name, "detail": exc.detail}, status_code=exc.status)

    app.add_exception_handler(RuleViolation, rule_violation)

    def checks(request: Request) -> dict[str, object]:
        rt: Runtime = request.app.state.rt

        async def broker() -> bool:
            return rt.producer_ready and await rt.producer.reachable()

        async def database() -> bool:
            await rt.database.ping()
            return True

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    for module in (cases, records, reports, admin):
        app.include_router(module.router)
    document_errors(app, forbidden=True, conflicts=True)
    return app
