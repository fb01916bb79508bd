"""Settings of the notifier service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.config import CommonSettings


class NotifierSettings(CommonSettings):
    """Settings of the notifier service (environment variables `BOKVAR_*`)."""

    notifier_port: int = Field(8003, description="HTTP port of the notifier service.")
    notifier_ingest_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of ingest; the notifier looks contacts up there at send time.",
    )
    notifier_policy_path: Path | None = Field(
        None, description="Notification policy file (default: the packaged default.yaml)."
    )
    notifier_templates_dir: Path | None = Field(
        None, description="Directory of `<language>.yaml` SMS templates (default: packaged)."
    )
    notifier_public_url: str = Field(
        "http://127.0.0.1:8003",
        description="Public base URL of the notifier as Twilio calls it (webhook signatures "
        "are computed over this URL, so it must match what Twilio was given).",
    )
    notifier_twilio_account_sid: str | None = Field(
        None, description="Twilio account SID. Unset: SMS go to the log channel."
    )
    notifier_twilio_auth_token: SecretStr | None = Field(
        None, description="Twilio auth token (also validates webhook signatures)."
    )
    notifier_twilio_messaging_service_sid: str | None = Field(
        None, description="Twilio Messaging Service SID (preferred over a from-number)."
    )
    notifier_twilio_from_number: str | None = Field(
        None, description="Sender number when no Messaging Service SID is set."
    )
    notifier_twilio_api_base_url: str | None = Field(
        None,
        description="Override of https://api.twilio.com (tests point it at a local server).",
    )
    notifier_phone_hash_key: SecretStr = Field(
        SecretStr("dev-phone-hash-key-change-me-published-not-secret"),
        description="Key of the keyed hash of phone numbers in opt-out records.",
    )
    notifier_sender_interval_seconds: float = Field(
        1.0, gt=0, description="How often the sender looks for due SMS (real seconds)."
    )
    notifier_escalation_interval_seconds: float = Field(
        30.0, gt=0, description="How often unacknowledged tasks are checked (real seconds)."
    )
    notifier_reconcile_after_seconds: float = Field(
        120.0,
        ge=0,
        description="An attempt still `sending` this long (clock time) after it started is "
        "treated as interrupted by a crash and reconciled.",
    )
    notifier_sender_batch: int = Field(100, ge=1, description="Max SMS picked per sender pass.")
    notifier_sender_concurrency: int = Field(
        4,
        ge=1,
        le=64,
        description="SMS in flight at once per notifier process (PostgreSQL; on SQLite one at "
        "a time). The policy's `sender_rate_per_second` paces them all together; one at a time "
        "a process sends at most 1 / (Twilio's latency) SMS a second.",
    )
    notifier_http_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of calls to ingest and Twilio."
    )
