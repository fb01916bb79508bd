"""HTTP API of the ingest service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from ingest.config import IngestSettings
from shared.http import health_router, install_error_handlers
from shared.runtime import Runtime, service_runtime


def create_app(settings: IngestSettings) -> FastAPI:
    """Build the ingest app; its lifespan owns the database, producer and consumers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(settings, "ingest") as rt:
            app.state.rt = rt
            yield

    app = FastAPI(title="Bokvar ingest", version="1", lifespan=lifespan)
    install_error_handlers(app)

    def checks(request: Request) -> dict[str, object]:
        rt: Runtime = request.app.state.rt

        async def broker() -> bool:
            return rt.producer_ready and await rt.producer.reachable()

        async def database() -> bool:
            await rt.database.ping()
            return True

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    return app
