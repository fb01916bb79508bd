"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.config import CommonSettings


class IngestSettings(CommonSettings):
    """Settings of the ingest service (environment variables `BOKVAR_*`)."""

    ingest_port: int = Field(8001, description="HTTP port of the ingest service.")
    ingest_pseudonym_secret: SecretStr = Field(
        SecretStr("dev-pseudonym-secret-change-me-published-not-secret"),
        description="Secret key of the HMAC-SHA256 tenant pseudonym (keep it stable: a new "
        "key gives every tenant a new pseudonym).",
    )
    ingest_dedup_window_days: int = Field(
        30,
        ge=1,
        description="How long an ERP event id is remembered: a repeat within the window is "
        "answered `duplicate` and not published again.",
    )
    ingest_max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted batch or CSV body (413 above)."
    )
    ingest_max_single_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest accepted single-event body (413 above)."
    )
    ingest_max_batch_events: int = Field(
        10_000, ge=1, description="Most events in one batch or CSV import (413 above)."
    )
    ingest_publish_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "How long a request waits for the broker before 503: for its partition metadata"
            " while the batch is encoded, then for its acks (each wait up to this long)."
        ),
    )
    ingest_retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with a 503 when the broker is unreachable."
    )
