"""API bodies of the cases service (events live in shared/events)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.cases.engine import CaseStatus, Notice, Priority, Recipient, Resolution
from shared.events.case import LegalStep

_ID = r"^[A-Za-z0-9._:\-]+$"
CaseId = Annotated[str, Path(min_length=1, max_length=64, pattern=_ID)]
EntityId = Annotated[str, Path(min_length=1, max_length=64, pattern=_ID)]
OrgIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]


def _printable(value: str) -> str:
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise ValueError("control characters are not allowed")
    return value


# Free text: no NUL or other control characters (PostgreSQL refuses NUL in text).
Text = Annotated[str, AfterValidator(_printable)]
Reason = Field(min_length=1, max_length=300, pattern=r"^[^\r\n]*\S[^\r\n]*$")
Actor = Field(min_length=1, max_length=100)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseRead(BaseModel):
    """A case."""

    id: str
    lease_id: str
    org_id: str
    status: CaseStatus
    resolution: Resolution | None
    priority: Priority
    assignee: str | None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    reason: str
    municipality_code: str | None
    household_type: str | None
    age_band: str | None
    gender: str | None
    purged: bool = False


class CaseList(BaseModel):
    """A page of cases."""

    items: list[CaseRead]
    total: int


class StatusChange(_Body):
    """Move a case to another status, with a one-line reason."""

    status: CaseStatus
    resolution: Resolution | None = None
    reason: Text = Reason


class Assignment(_Body):
    """Assign a case (and optionally set its priority)."""

    assignee: Text | None = Field(None, min_length=1, max_length=100)
    priority: Priority | None = None
    reason: Text = Reason


class NoteCreate(_Body):
    """A factual case note (case records may be public documents)."""

    text: Text = Field(min_length=1, max_length=4000)


class TimelineEntry(BaseModel):
    """One entry of a case timeline."""

    id: int
    at: datetime
    kind: str
    ref_id: str
    name: str | None
    status: str | None
    outcome: str | None
    summary: str | None
    text: str | None
    actor: str | None
    data: dict[str, Any]


class Timeline(BaseModel):
    """A case's timeline, oldest first."""

    case_id: str
    entries: list[TimelineEntry]


class ReferralCreate(_Body):
    """Record a referral (escalation). A statutory notice names `notice`."""

    recipient: Recipient
    notice: Notice | None = None
    referred_on: date
    summary: Text | None = Field(None, max_length=1000)
    amount_owed_ore: int | None = Field(None, ge=0, le=10**12)
    outcome: Text | None = Field(None, min_length=1, max_length=100)


class ReferralOutcome(_Body):
    """Record a referral's outcome."""

    outcome: Text = Field(min_length=1, max_length=100)


class ReferralRead(BaseModel):
    """A referral."""

    id: str
    case_id: str
    recipient: Recipient
    notice: Notice | None
    legal_basis: str
    referred_on: date
    summary: str | None
    amount_owed_ore: int | None
    outcome: str | None
    statutory: bool
    created_at: datetime


class ConsentCreate(_Body):
    """A signed consent form (samtyckesblankett): who may share with whom, until when."""

    scope: list[Recipient] = Field(min_length=1, max_length=3)
    given_on: date
    expires_on: date | None = None
    document_ref: Text = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _dates(self) -> ConsentCreate:
        if self.expires_on is not None and self.expires_on < self.given_on:
            raise ValueError("expires_on is before given_on")
        return self


class ConsentRead(BaseModel):
    """A consent; `valid` tells whether it is in force now."""

    id: str
    case_id: str
    scope: list[str]
    given_on: date
    expires_on: date | None
    withdrawn_at: datetime | None
    document_ref: str | None
    valid: bool


class LegalStepCreate(_Body):
    """Record a step of the legal timeline."""

    step: LegalStep
    step_date: date
    amount_owed_ore: int | None = Field(None, ge=0, le=10**12)


class LegalStepRead(BaseModel):
    """A recorded legal step."""

    id: str
    case_id: str
    step: str
    step_date: date
    amount_owed_ore: int | None
    created_at: datetime


class InstallmentBody(_Body):
    """One installment."""

    due_date: date
    amount_ore: int = Field(gt=0, le=10**12)


class PaymentPlanCreate(_Body):
    """Agree a payment plan (avbetalningsplan)."""

    agreed_on: date
    installments: list[InstallmentBody] = Field(min_length=1, max_length=120)

    @model_validator(mode="after")
    def _ordered(self) -> PaymentPlanCreate:
        dates = [i.due_date for i in self.installments]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("installment due dates must be distinct and in order")
        return self


class PaymentPlanRead(BaseModel):
    """A payment plan; installments are empty after a retention purge."""

    id: str
    case_id: str
    agreed_on: date
    installment_count: int
    total_ore: int | None
    installments: list[InstallmentBody]


Participant = Literal["tenant", "landlord", "social_services", "budget_debt_advice", "other"]


class MeetingCreate(_Body):
    """A three-party meeting (tenant, landlord, municipality)."""

    held_on: date
    participants: list[Participant] = Field(min_length=1, max_length=10)
    outcome: Text = Field(min_length=1, max_length=1000)


class MeetingRead(BaseModel):
    """A meeting."""

    id: str
    case_id: str
    held_on: date
    participants: list[str] | None
    outcome: str | None


class OrgSettingsBody(_Body):
    """An organisation's home count and baseline for per-1,000 statistics."""

    home_count: int = Field(gt=0, le=10_000_000)
    baseline_year: int | None = Field(None, ge=1990, le=2100)
    baseline_evictions: int | None = Field(None, ge=0, le=1_000_000)


class OrgSettingsRead(BaseModel):
    """An organisation's settings."""

    org_id: str
    home_count: int
    baseline_year: int | None
    baseline_evictions: int | None
    updated_at: datetime


class AuditVerification(BaseModel):
    """Result of verifying the audit chain."""

    ok: bool
    rows: int
    first_broken_id: int | None
    problem: str | None = None


class PurgeResult(BaseModel):
    """Result of a retention purge."""

    purged_cases: list[str]
