"""What the case operations share: ids, the event envelope, the emit callback."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from shared.events import CloudEvent, EventData, new_event

SOURCE = "bokvar/cases"
Emit = Callable[[CloudEvent[EventData]], Awaitable[None]]
Row = dict[str, Any]


def new_id(prefix: str) -> str:
    """Return a fresh id for an entity recorded through the API."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def case_id_for(event_id: str) -> str:
    """Return the deterministic id of the case a signal event opens."""
    return "C-" + hashlib.sha256(event_id.encode()).hexdigest()[:20]


def event(data: EventData, event_id: str, now: datetime) -> CloudEvent[EventData]:
    """Wrap a case event with a deterministic id."""
    return new_event(data, id=event_id, source=SOURCE, time=now)
