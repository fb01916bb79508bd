"""Settings of the rules service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import CommonSettings


class RulesSettings(CommonSettings):
    """Settings of the rules service (environment variables `BOKVAR_*`)."""

    rules_port: int = Field(8002, description="HTTP port of the rules service.")
    rules_consumers: int = Field(
        2,
        ge=1,
        description="Members of the rules consumer group in each process: one applies its "
        "batch while another waits for the database. Partitions bound the useful total.",
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
