"""Bodies of the notifier's HTTP API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.notification import TaskOutcome

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class StaffWrite(BaseModel):
    """A staff member of the directory (create or replace)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, e.g. +46701234567.")
    team: str = Field(min_length=1, max_length=64)
    is_lead: bool = False
    work_start: str = Field("08:00", pattern=HHMM, description="Local start of duty, HH:MM.")
    work_end: str = Field("17:00", pattern=HHMM, description="Local end of duty, HH:MM.")
    work_days: str = Field(
        "12345", pattern=r"^[1-7]{1,7}$", description="ISO weekdays on duty, 1=Monday."
    )
    active: bool = True

    @model_validator(mode="after")
    def _hours(self) -> StaffWrite:
        if self.work_start >= self.work_end:
            raise ValueError("work_start must be before work_end")
        return self


class StaffRead(StaffWrite):
    """A staff member as stored."""

    id: str
    created_at: datetime
    updated_at: datetime


class TaskRead(BaseModel):
    """A staff task."""

    id: str
    kind: str
    lease_id: str
    org_id: str
    signal_id: str | None
    notification_id: str | None
    team: str | None
    assignee_id: str | None
    escalated_to: str | None
    status: str
    due_at: datetime | None
    outcome: str | None
    promised_date: date | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    completed_at: datetime | None
    escalated_at: datetime | None


class TaskAcknowledge(BaseModel):
    """Who takes the task: an active member of the staff directory."""

    model_config = ConfigDict(extra="forbid")

    staff_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="Id of the staff member who takes the task (must be in the directory).",
    )


class TaskComplete(BaseModel):
    """How a task ended."""

    model_config = ConfigDict(extra="forbid")

    outcome: TaskOutcome
    promised_date: date | None = Field(None, description="Required for payment_promised.")
    note: str | None = Field(None, max_length=2000, description="Factual note (no diagnoses).")

    @model_validator(mode="after")
    def _promise(self) -> TaskComplete:
        if self.outcome == "payment_promised" and self.promised_date is None:
            raise ValueError("promised_date is required when outcome is payment_promised")
        if self.outcome == "other" and not self.note:
            raise ValueError("note is required when outcome is other")
        return self


class NotificationRead(BaseModel):
    """An SMS to a tenant or staff member. The phone number is masked."""

    id: str
    lease_id: str
    recipient_kind: Literal["tenant", "staff"]
    recipient_id: str
    signal_id: str | None
    signal: str | None
    template: str
    language: str | None
    channel: str | None
    status: str
    due_at: datetime
    attempts: int
    provider_sid: str | None
    phone_masked: str | None
    detail: str | None
    created_at: datetime
    sent_at: datetime | None


class OptOutRead(BaseModel):
    """An opt-out record (keyed by a hash of the phone number)."""

    phone_hash: str
    tenant_id: str | None
    lease_id: str | None
    opted_out: bool
    keyword: str
    updated_at: datetime


def from_row(model: type[Any], row: Any) -> Any:
    """Build a read model from a table row."""
    return model.model_validate(dict(row._mapping))
