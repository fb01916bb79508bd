"""Settings of the notifier service."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class NotifierSettings(CommonSettings):
    """Settings of the notifier service (environment variables `BOKVAR_*`)."""

    notifier_port: int = Field(8003, description="HTTP port of the notifier service.")
