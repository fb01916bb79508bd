"""Settings of the cases service."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class CasesSettings(CommonSettings):
    """Settings of the cases service (environment variables `BOKVAR_*`)."""

    cases_port: int = Field(8004, description="HTTP port of the cases service.")
