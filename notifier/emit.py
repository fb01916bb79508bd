"""Build the `notification.events` for state changes (pure; ids are deterministic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from shared.events import CloudEvent, NotificationStatusChanged, TaskChanged, new_event
from shared.events.notification import SmsStatus, TaskKind, TaskOutcome, TaskStatus

SOURCE = "bokvar/notifier"
_EVENT_STATUSES = frozenset(
    {"queued", "deferred", "sent", "delivered", "failed", "cancelled", "undelivered"}
)


def notification_event(row: Any, *, at: datetime) -> CloudEvent[NotificationStatusChanged] | None:
    """Return the event for a notification row's current state (None for internal states)."""
    if row.status not in _EVENT_STATUSES:
        return None
    channel = cast("Literal['sms', 'letter', 'log']", row.channel or "sms")
    data = NotificationStatusChanged(
        lease_id=row.lease_id,
        org_id=row.org_id,
        notification_id=row.id,
        signal_id=row.signal_id,
        signal=row.signal,
        channel=channel,
        status=cast(SmsStatus, row.status),
        template=row.template,
        language=row.language,
        at=at,
        detail=(row.detail or None) and str(row.detail)[:200],
    )
    return new_event(data, id=f"notifier:n:{row.id}:v{row.version}", source=SOURCE, time=at)


def task_event(row: Any, *, at: datetime) -> CloudEvent[TaskChanged]:
    """Return the event for a task row's current state."""
    data = TaskChanged(
        lease_id=row.lease_id,
        org_id=row.org_id,
        task_id=row.id,
        signal_id=row.signal_id,
        kind=cast(TaskKind, row.kind),
        status=cast(TaskStatus, row.status),
        team=row.team,
        assignee_id=row.escalated_to or row.assignee_id,
        due_at=row.due_at,
        at=at,
        outcome=cast("TaskOutcome | None", row.outcome),
        promised_date=row.promised_date,
    )
    return new_event(data, id=f"notifier:t:{row.id}:v{row.version}", source=SOURCE, time=at)
