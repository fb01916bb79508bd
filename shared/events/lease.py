"""Lease events (topic `lease.events`)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import EventData, Ore
from shared.topics import LEASE_EVENTS

AgeBand = Literal["18-24", "25-29", "30-39", "40-49", "50-64", "65+", "under-18"]
Gender = Literal["female", "male"]
HouseholdType = Literal[
    "single_adult", "single_with_children", "couple", "couple_with_children", "other", "unknown"
]


class TenantRef(BaseModel):
    """A tenant as Kafka may carry it: a pseudonym and derived, non-identifying attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(min_length=1, max_length=64, description="The ERP's tenant id.")
    pseudonym: str = Field(
        min_length=16, max_length=128, description="Keyed HMAC of the personnummer."
    )
    birth_year: int = Field(ge=1900, le=2100)
    age_band: AgeBand
    gender: Gender


class _LeaseSnapshot(EventData):
    property_id: str = Field(min_length=1, max_length=64)
    area: str | None = Field(None, max_length=128, description="District or area name.")
    municipality_code: str = Field(pattern=r"^[0-9]{4}$", description="Kommunkod, e.g. 0180.")
    monthly_rent_ore: Ore = Field(ge=0)
    start_date: date
    end_date: date | None = None
    team: str = Field(min_length=1, max_length=64, description="Responsible staff team.")
    household_type: HouseholdType = "unknown"
    due_day: int | None = Field(
        None, ge=1, le=28, description="Day of month rent is due if the lease overrides JB 12:20."
    )
    tenants: tuple[TenantRef, ...] = Field(min_length=1)


class LeaseRegistered(_LeaseSnapshot):
    """A lease was registered with Bokvar."""

    event_type = "se.bokvar.lease.registered.v1"
    topic = LEASE_EVENTS


class LeaseUpdated(_LeaseSnapshot):
    """A lease's terms or tenants changed (a full snapshot)."""

    event_type = "se.bokvar.lease.updated.v1"
    topic = LEASE_EVENTS


class LeaseEnded(EventData):
    """A lease ended."""

    event_type = "se.bokvar.lease.ended.v1"
    topic = LEASE_EVENTS

    end_date: date
    reason: Literal["moved_out", "terminated", "evicted", "other"] = "moved_out"
