"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class IngestSettings(CommonSettings):
    """Settings of the ingest service (environment variables `BOKVAR_*`)."""

    ingest_port: int = Field(8001, description="HTTP port of the ingest service.")
