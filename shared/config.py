"""Settings shared by every service, read once from `BOKVAR_*` environment variables.

Each service subclasses `CommonSettings` with its own fields (see `rules/config.py`).
The README's settings table is generated from these classes (`bokvar docs`), and a test
fails when it drifts.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded"
MIN_SECRET_BYTES = 32
# Every published development secret (field defaults, deploy placeholders) contains this.
PLACEHOLDER_MARK = "change-me"
# The cases service checks bearer JWTs with this key; the console mints them with it.
DEV_CASES_JWT_SECRET = "dev-cases-jwt-secret-change-me-published-not-secret"


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
    dev_mode: bool = Field(
        False,
        description="Development mode: let a service start with the published development "
        "secrets on a non-loopback host or on PostgreSQL (never in production).",
    )
    timezone: str = Field("Europe/Stockholm", description="Local time zone of the rules.")
    service_token: SecretStr = Field(
        SecretStr("dev-service-token-change-me-published-not-secret"),
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
    consumer_batch_size: int = Field(
        2000,
        ge=1,
        description="Max records per consumer batch (one transaction; a backlog is read in "
        "batches this large, a trickle one event at a time).",
    )
    consumer_poll_ms: int = Field(200, ge=1, description="Consumer poll timeout.")


class InsecureSettings(ValueError):
    """A service would start with a published or too short secret; names the variables."""


def secret_variables(settings: CommonSettings) -> dict[str, str]:
    """Return the service's own secrets by variable name (not optional integrations' keys)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    found: dict[str, str] = {}
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and info.default is not None:
            found[(prefix + name).upper()] = value.get_secret_value()
    return found


def is_exposed(settings: CommonSettings) -> bool:
    """Tell whether a service is reachable beyond this machine or keeps data in PostgreSQL."""
    if not settings.database_url.startswith("sqlite"):
        return True
    if settings.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        return True


def check_secrets(settings: CommonSettings) -> None:
    """Raise InsecureSettings if a secret is short, or published while the service is exposed."""
    short, published = [], []
    for variable, value in secret_variables(settings).items():
        if len(value.encode()) < MIN_SECRET_BYTES:
            short.append(variable)
        elif PLACEHOLDER_MARK in value.lower():
            published.append(variable)
    problems = []
    if short:
        problems.append(f"{', '.join(short)} shorter than {MIN_SECRET_BYTES} bytes")
    if published and is_exposed(settings) and not settings.dev_mode:
        problems.append(
            f"{', '.join(published)} still the published development value "
            f"(host {settings.host}, database {settings.database_url.split(':', 1)[0]}; "
            "BOKVAR_DEV_MODE=true allows it on a development machine)"
        )
    if problems:
        raise InsecureSettings(
            "refusing to start: " + "; ".join(problems) + ". Set each to a random value of "
            f"{MIN_SECRET_BYTES} bytes or more, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
