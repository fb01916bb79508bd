"""Settings shared by every service, read once from `BOKVAR_*` environment variables.

Each service subclasses `CommonSettings` with its own fields (see `rules/config.py`).
The README's settings table is generated from these classes (`bokvar docs`), and a test
fails when it drifts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded"


class CommonSettings(BaseSettings):
    """Settings every Bokvar process understands."""

    model_config = SettingsConfigDict(env_prefix="BOKVAR_", extra="ignore", frozen=True)

    database_url: str = Field(
        "sqlite+aiosqlite:///./var/bokvar.db",
        description="SQLAlchemy async URL. SQLite keeps one file per service next to the "
        "given path; PostgreSQL (postgresql+asyncpg://) keeps one schema per service.",
    )
    kafka_bootstrap_servers: str = Field(
        EMBEDDED,
        description="Kafka bootstrap servers, or `embedded` for the broker that "
        "`bokvar broker` / `bokvar up` started (its address is read from var_dir).",
    )
    kafka_client_id: str = Field("bokvar", description="Kafka client id prefix.")
    topic_partitions: int = Field(
        6, ge=1, description="Partitions for topics that `bokvar` creates."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor for created topics (3 in production)."
    )
    var_dir: Path = Field(Path("./var"), description="Working directory for local state.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json` in production; `auto` uses console on a TTY."
    )
    host: str = Field("127.0.0.1", description="Interface the HTTP services bind to.")
    timezone: str = Field("Europe/Stockholm", description="Local time zone of the rules.")
    service_token: SecretStr = Field(
        SecretStr("dev-service-token-change-me"),
        description="Bearer token services use to call each other's internal APIs.",
    )
    clock_start: datetime | None = Field(
        None,
        description="Simulation only: the instant the clock shows at clock_epoch. "
        "Unset means the real clock.",
    )
    clock_epoch: float | None = Field(
        None, description="Simulation only: real UNIX time at which the clock shows clock_start."
    )
    clock_speed: float = Field(
        1.0, gt=0, description="Simulation only: simulated seconds per real second."
    )
    kafka_session_timeout_ms: int = Field(
        6000, ge=500, description="Consumer group session timeout (raise to 45000 on Kafka)."
    )
    kafka_heartbeat_interval_ms: int = Field(1000, ge=100, description="Consumer heartbeat.")
    kafka_rebalance_timeout_ms: int = Field(
        3000, ge=100, description="How long a rebalance waits for members to rejoin."
    )
    consumer_batch_size: int = Field(500, ge=1, description="Max records per consumer batch.")
    consumer_poll_ms: int = Field(200, ge=1, description="Consumer poll timeout.")
