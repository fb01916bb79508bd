"""Case operations shared by the consumer and the API: engine decision -> store -> events.

Every function works inside the caller's transaction and stages its events through
`emit` (the outbox); the caller commits.
"""

from services.cases.actions.common import Emit, case_id_for, new_id
from services.cases.actions.events import on_lease, on_notification, on_signal
from services.cases.actions.records import (
    agree_plan,
    change_status,
    record_legal_step,
    record_referral,
)
from services.cases.actions.settle import on_retracted

__all__ = [
    "Emit",
    "agree_plan",
    "case_id_for",
    "change_status",
    "new_id",
    "on_lease",
    "on_notification",
    "on_retracted",
    "on_signal",
    "record_legal_step",
    "record_referral",
]
