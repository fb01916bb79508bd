"""Settings of the cases service."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.config import DEV_CASES_JWT_SECRET, CommonSettings


class CasesSettings(CommonSettings):
    """Settings of the cases service (environment variables `BOKVAR_*`)."""

    cases_port: int = Field(8004, description="HTTP port of the cases service.")
    cases_jwt_secret: SecretStr = Field(
        SecretStr(DEV_CASES_JWT_SECRET),
        description="HS256 signing key of the bearer JWTs the cases API accepts.",
    )
    cases_jwt_max_lifetime_hours: float = Field(
        12.0,
        gt=0,
        description="Longest accepted lifetime of a bearer JWT (exp minus iat); longer ones "
        "get 401.",
    )
    cases_retention_days: int = Field(
        730,
        ge=1,
        description="Days after a case closes before its personal data is purged "
        "(anonymous statistics are kept).",
    )
    cases_retention_interval_seconds: float = Field(
        3600.0, gt=0, description="Real seconds between retention purge sweeps."
    )
    cases_audit_anchor_interval_seconds: float = Field(
        300.0,
        gt=0,
        description="Real seconds between `cases.audit_anchor` log lines (the audit chain's "
        "last id, hash and row count, for `bokvar audit verify --anchors`).",
    )
    cases_consume: bool = Field(
        True, description="Run the consumer of risk.signals, notification.events, lease.events."
    )
