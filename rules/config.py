"""Settings of the rules service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import CommonSettings


class RulesSettings(CommonSettings):
    """Settings of the rules service (environment variables `BOKVAR_*`)."""

    rules_port: int = Field(8002, description="HTTP port of the rules service.")
    rules_lanes: int = Field(
        2,
        ge=1,
        le=16,
        description="Loops in which each rules process fetches and applies batches at once, each "
        "on its share of the partitions, so one evaluates while another waits for PostgreSQL. "
        "One consumer group member either way; 1 on SQLite.",
    )
    rules_sweep_interval_seconds: float = Field(
        30.0, gt=0, description="Real seconds between sweeps of due deadlines (and at midnight)."
    )
    rules_sweep_chunk: int = Field(
        1000, ge=1, description="Leases evaluated per sweep transaction."
    )
    rules_policy_path: Path | None = Field(
        None, description="Policy file to use instead of the packaged default.yaml."
    )
    rules_policy_overrides_dir: Path | None = Field(
        None, description="Directory of per-organisation overrides (`<org_id>.yaml`)."
    )
