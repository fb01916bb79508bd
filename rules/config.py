"""Settings of the rules service."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class RulesSettings(CommonSettings):
    """Settings of the rules service (environment variables `BOKVAR_*`)."""

    rules_port: int = Field(8002, description="HTTP port of the rules service.")
