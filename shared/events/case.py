"""Case events (topic `case.events`), published by the case service."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import AwareDatetime, EventData, Ore
from shared.topics import CASE_EVENTS

CaseStatus = Literal[
    "new", "in_contact", "payment_plan", "referred", "pending_review", "resolved", "evicted"
]
Recipient = Literal["social_services", "budget_debt_advice", "kronofogden"]
LegalStep = Literal[
    "termination_sent",
    "recovery_notice_served",
    "social_services_notice_sent",
    "enforcement_applied",
    "eviction_date_set",
    "eviction_executed",
    "eviction_cancelled",
]


class CaseOpened(EventData):
    """A case was opened for a household at risk."""

    event_type = "se.bokvar.case.opened.v1"
    topic = CASE_EVENTS

    case_id: str
    opened_at: AwareDatetime
    trigger_signal_id: str | None = None
    reason: str = Field(max_length=300)


class CaseStatusChanged(EventData):
    """A case moved to another status."""

    event_type = "se.bokvar.case.status_changed.v1"
    topic = CASE_EVENTS

    case_id: str
    status: CaseStatus
    resolution: (
        Literal["paid", "plan_completed", "moved_voluntarily", "raised_in_error", "other"] | None
    ) = None
    at: AwareDatetime
    reason: str = Field(max_length=300)


class ReferralRecorded(EventData):
    """A referral (escalation) to social services, debt advice or Kronofogden was recorded."""

    event_type = "se.bokvar.case.referral_recorded.v1"
    topic = CASE_EVENTS

    case_id: str
    referral_id: str
    recipient: Recipient
    legal_basis: str = Field(max_length=200)
    statutory: bool
    referred_on: date
    outcome: str | None = Field(None, max_length=100)


class LegalStepRecorded(EventData):
    """A step of the legal timeline was recorded (the rules service follows these)."""

    event_type = "se.bokvar.case.legal_step_recorded.v1"
    topic = CASE_EVENTS

    case_id: str
    step_id: str
    step: LegalStep
    step_date: date
    amount_owed_ore: Ore | None = None


class Installment(BaseModel):
    """One installment of a payment plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    due_date: date
    amount_ore: Ore = Field(gt=0)


class PaymentPlanAgreed(EventData):
    """A payment plan (avbetalningsplan) was agreed; the rules service monitors it."""

    event_type = "se.bokvar.case.payment_plan_agreed.v1"
    topic = CASE_EVENTS

    plan_id: str
    case_id: str | None = None
    agreed_on: date
    installments: tuple[Installment, ...] = Field(min_length=1)
