"""Risk signals (topic `risk.signals`), emitted by the rules service. Each one is explained."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import AwareDatetime, EventData, Ore
from shared.topics import RISK_SIGNALS

SignalType = Literal[
    "pre_due_reminder",
    "late_rent_detected",
    "personal_contact_needed",
    "forfeiture_possible",
    "recovery_period_started",
    "recovery_period_reminder",
    "recovery_period_ending",
    "recovery_period_ended",
    "enforcement_possible",
    "arrears_cleared",
    "plan_breached",
    "complaint_pattern",
    "social_services_notice_due",
    "high_risk",
]


class RiskFactor(BaseModel):
    """One factor of the risk score: its input value, weight and points contributed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    value: float
    weight: float
    points: float


class RiskScore(BaseModel):
    """A 0–100 risk score with the factors that make it up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int = Field(ge=0, le=100)
    factors: tuple[RiskFactor, ...] = ()


class SignalRaised(EventData):
    """The rules service found something that calls for action, and explains why."""

    event_type = "se.bokvar.risk.signal_raised.v1"
    topic = RISK_SIGNALS

    signal_id: str = Field(description="Deterministic: lease, charge or period, stage.")
    signal: SignalType
    rule: str = Field(description="The policy stage or pattern rule that fired.")
    policy_version: str
    occurred_at: AwareDatetime = Field(description="When the condition was met (rule time).")
    period: str | None = None
    due_date: date | None = None
    days_late: int | None = None
    arrears_ore: Ore | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    risk: RiskScore
    reason_sv: str
    reason_en: str


RetractionReason = Literal["paid_on_time", "payment_booked_before_stage", "data_corrected"]


class SignalRetracted(EventData):
    """A signal raised earlier was wrong in hindsight and is withdrawn.

    Emitted when a payment booked on or before the stage date (or the due date) arrives
    after the signal was raised. The notifier cancels what the signal queued and cases
    closes a case it opened as raised in error. Never reuses the retracted signal's id.
    """

    event_type = "se.bokvar.risk.signal_retracted.v1"
    topic = RISK_SIGNALS

    retraction_id: str = Field(description="Deterministic: the retracted signal id + ':retracted'.")
    signal_id: str = Field(description="The id of the SignalRaised being withdrawn.")
    signal: SignalType = Field(description="The type of the signal being withdrawn.")
    rule: str
    policy_version: str
    occurred_at: AwareDatetime = Field(description="When the error became known (rule time).")
    reason_code: RetractionReason
    period: str | None = None
    due_date: date | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    reason_sv: str
    reason_en: str
