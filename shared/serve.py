"""Run a FastAPI service under uvicorn; SIGTERM and Ctrl-C shut it down through its lifespan."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from shared.config import CommonSettings, InsecureSettings, check_secrets
from shared.logging import configure_logging


def serve(app: FastAPI, settings: CommonSettings, *, port: int) -> None:
    """Serve `app` on settings.host:port until a signal stops it; refuse insecure secrets."""
    refuse_insecure(settings)
    configure_logging(settings.log_level, settings.log_format)
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


def refuse_insecure(settings: CommonSettings) -> None:
    """Exit with a one-line message (status 2) when the settings' secrets are unsafe."""
    try:
        check_secrets(settings)
    except InsecureSettings as exc:
        print(f"bokvar: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
