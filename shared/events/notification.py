"""Notification events (topic `notification.events`), published by the notifier."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.base import AwareDatetime, EventData
from shared.topics import NOTIFICATION_EVENTS

SmsStatus = Literal["queued", "deferred", "sent", "delivered", "failed", "cancelled", "undelivered"]
TaskStatus = Literal["created", "acknowledged", "completed", "escalated", "cancelled"]
TaskKind = Literal["phone_call", "letter", "tenant_replied", "reconcile_send", "visit"]
TaskOutcome = Literal[
    "reached",
    "no_answer",
    "wrong_number",
    "payment_promised",
    "payment_plan_agreed",
    "referred_onwards",
    "other",
]


class NotificationStatusChanged(EventData):
    """An SMS (or letter) to a tenant changed state. Phone numbers never appear here."""

    event_type = "se.bokvar.notification.status_changed.v1"
    topic = NOTIFICATION_EVENTS

    notification_id: str
    signal_id: str | None = None
    signal: str | None = None
    channel: Literal["sms", "letter", "log"] = "sms"
    status: SmsStatus
    template: str | None = None
    language: str | None = None
    at: AwareDatetime
    detail: str | None = Field(None, max_length=200, description="Error code or reason.")


class TaskChanged(EventData):
    """A staff task (phone call, letter, tenant reply) changed state."""

    event_type = "se.bokvar.notification.task_changed.v1"
    topic = NOTIFICATION_EVENTS

    task_id: str
    signal_id: str | None = None
    kind: TaskKind
    status: TaskStatus
    team: str | None = None
    assignee_id: str | None = None
    due_at: AwareDatetime | None = None
    at: AwareDatetime
    outcome: TaskOutcome | None = None
    promised_date: date | None = None
