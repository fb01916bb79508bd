"""Complaint events (topic `complaint.events`). Descriptions stay in ingest's vault."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.base import AwareDatetime, EventData
from shared.topics import COMPLAINT_EVENTS

ComplaintCategory = Literal["disturbance", "neglect", "other"]


class ComplaintReceived(EventData):
    """A complaint about the household was registered."""

    event_type = "se.bokvar.complaint.received.v1"
    topic = COMPLAINT_EVENTS

    complaint_id: str = Field(min_length=1, max_length=64)
    category: ComplaintCategory
    occurred_at: AwareDatetime


class ComplaintResolved(EventData):
    """A complaint was closed."""

    event_type = "se.bokvar.complaint.resolved.v1"
    topic = COMPLAINT_EVENTS

    complaint_id: str = Field(min_length=1, max_length=64)
    resolved_at: AwareDatetime
    resolution: Literal["unfounded", "corrected", "other"] = "other"


class WarningIssued(EventData):
    """The landlord gave the tenant a warning (tillsägelse / rättelseanmaning)."""

    event_type = "se.bokvar.complaint.warning_issued.v1"
    topic = COMPLAINT_EVENTS

    warning_id: str = Field(min_length=1, max_length=64)
    category: Literal["disturbance", "neglect", "late_payment"]
    issued_date: date
