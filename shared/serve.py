"""Run a FastAPI service under uvicorn; SIGTERM and Ctrl-C shut it down through its lifespan.

Before uvicorn starts, the service checks what it cannot work without and exits with
one line saying what to do: the embedded broker's address, and migrated tables.
"""

from __future__ import annotations

import asyncio
import gc
import sys

import structlog
import uvicorn
from fastapi import FastAPI

from shared.bus.broker import resolve_bootstrap_servers
from shared.config import CommonSettings, InsecureSettings, check_secrets
from shared.db import Database
from shared.db.migrate import is_migrated
from shared.logging import configure_logging

log = structlog.get_logger(__name__)


async def _not_migrated(settings: CommonSettings, service: str) -> bool:
    database = Database(settings.database_url, service)
    try:
        return not await asyncio.wait_for(is_migrated(database), timeout=15)
    except Exception as exc:  # unreachable now: the runtime retries and /readyz tells
        log.warning("serve.migrations_unknown", service=service, error=type(exc).__name__)
        return False
    finally:
        await database.dispose()


def preflight(settings: CommonSettings, service: str) -> str | None:
    """Return why `service` cannot start (one line), or None when it can."""
    try:
        resolve_bootstrap_servers(settings.kafka_bootstrap_servers, settings.var_dir)
    except RuntimeError as exc:
        return str(exc)
    if asyncio.run(_not_migrated(settings, service)):
        return (
            f"the {service} tables in the database are missing or older than this code: "
            "run `bokvar migrate` first"
        )
    return None


def serve(app: FastAPI, settings: CommonSettings, *, port: int) -> None:
    """Serve `app` on settings.host:port until a signal stops it; refuse insecure secrets."""
    refuse_insecure(settings)
    configure_logging(settings.log_level, settings.log_format)
    service = getattr(app.state, "service", None)
    problem = preflight(settings, service) if service else None
    if problem:
        raise SystemExit(f"bokvar serve {service}: {problem}")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    uvicorn.Server(config).run()


def tune_gc() -> None:
    """Freeze import-time objects and collect young objects less often (call before serve).

    A consumer batch of 2,000 events builds tens of thousands of short-lived objects
    (records, events, rows); with the default thresholds the cyclic collector rescans the
    heap many times per batch (bench/RESULTS.md, issue 14).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def refuse_insecure(settings: CommonSettings) -> None:
    """Exit with a one-line message (status 2) when the settings' secrets are unsafe."""
    try:
        check_secrets(settings)
    except InsecureSettings as exc:
        print(f"bokvar: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
