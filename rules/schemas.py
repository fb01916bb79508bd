"""API bodies of the rules service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.signal import RiskScore


class ChargeRead(BaseModel):
    """A rent charge and its payment history."""

    period: str
    invoice_id: str
    due_date: date
    amount_ore: int
    open_ore: int
    paid_on: date | None
    days_late: int


class DeadlineRead(BaseModel):
    """The next thing that will happen unless the household pays."""

    due_at: datetime
    signal: str
    stage: str
    ref: str
    what_happens: str = Field(description="What the signal sets off downstream, if still unpaid.")


class SignalRead(BaseModel):
    """A signal already emitted."""

    signal_id: str
    signal: str
    occurred_at: datetime


class LeaseStatus(BaseModel):
    """A lease's ledger, stage, next deadline, risk and history."""

    lease_id: str
    org_id: str
    policy_version: str
    as_of: date
    balance_ore: int
    arrears_ore: int
    months_of_rent_owed: float
    stage: str | None = Field(
        description="The most severe open stage (ladder or recovery; retracted ones and "
        "those of paid charges excluded)."
    )
    next_deadline: DeadlineRead | None
    upcoming: list[DeadlineRead]
    risk: RiskScore
    charges: list[ChargeRead]
    plans: dict[str, dict[str, Any]]
    recovery: dict[str, Any] | None
    held: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Stages due but waiting until payments booked before them can be known "
        "(the org's ledger watermark, or the settlement lag).",
    )
    watermark: date | None = Field(
        None, description="The org's ledger watermark: payments booked through it were sent."
    )
    signals: list[SignalRead]


class PolicyRead(BaseModel):
    """The active policy and the organisations with an override."""

    version: str
    policy: dict[str, Any]
    overrides: dict[str, str] = Field(description="org_id -> override policy version.")


class PolicyValid(BaseModel):
    """A policy document passed validation."""

    valid: bool = True
    version: str
    stages: list[str]


class WhatIfRequest(BaseModel):
    """Replay stored history between two dates under a candidate policy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    policy: dict[str, Any] | str = Field(description="Candidate policy as an object or YAML text.")
    from_date: date = Field(alias="from")
    to_date: date = Field(alias="to")
    org_id: str | None = None
    lease_ids: list[str] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _range(self) -> WhatIfRequest:
        if self.to_date < self.from_date:
            raise ValueError("`to` must not be before `from`")
        if (self.to_date - self.from_date).days > 366:
            raise ValueError("the range may span at most 366 days")
        return self


class FlagRead(BaseModel):
    """A signal a policy would have raised."""

    lease_id: str
    signal_id: str
    signal: str
    on: date


class WhatIfReport(BaseModel):
    """Who would be flagged, at which stage, under the active and the candidate policy."""

    active_version: str
    candidate_version: str
    leases: int
    active: list[FlagRead]
    candidate: list[FlagRead]
    only_active: list[FlagRead]
    only_candidate: list[FlagRead]
    counts: dict[str, dict[str, int]] = Field(description="signal -> {active, candidate}.")
