"""Request and response bodies of the ingest API (events themselves live in shared/events).

Input models are strict (no type coercion: "100" is not an integer) and forbid unknown
fields. Dates and instants are ISO 8601 strings; instants must carry a zone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from shared.events.base import LeaseId, Period
from shared.events.complaint import ComplaintCategory
from shared.events.lease import HouseholdType
from shared.guard import CONTROL, CONTROL_REASON


def _iso_date(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) != 10:
            raise ValueError("dates are ISO 8601 strings, YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("not a valid date (YYYY-MM-DD)") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError("dates are ISO 8601 strings, YYYY-MM-DD")


def _iso_instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not a valid ISO 8601 instant") from None
    if not isinstance(value, datetime):
        raise ValueError("instants are ISO 8601 strings with a zone")
    if value.tzinfo is None:
        raise ValueError("instants must carry a time zone (e.g. 2026-03-01T08:00:00+01:00)")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Instant = Annotated[datetime, BeforeValidator(_iso_instant)]
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="The ERP's own id of this event (printable ASCII, no spaces). "
        "A repeat within the dedup window is answered `duplicate`.",
    ),
]
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
Amount = Annotated[int, Field(gt=0, le=10**12, description="Money in öre (1 SEK = 100 öre).")]
Reason = Annotated[str, Field(max_length=200)]


class StrictIn(BaseModel):
    """Base of every input body: strict types, unknown fields, control characters rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        # PostgreSQL refuses NUL in text; no other control character belongs in ERP data.
        if isinstance(value, str) and CONTROL.search(value):
            raise ValueError(CONTROL_REASON)
        return value


class TenantIn(StrictIn):
    """A tenant on the lease. Only the pseudonym and derived attributes leave ingest."""

    tenant_id: Ident
    personnummer: str = Field(
        min_length=10, max_length=13, description="YYMMDD-NNNC, YYMMDD+NNNC or YYYYMMDDNNNC."
    )
    phone: str | None = Field(None, max_length=32, description="E.164 or Swedish 07X...")
    language: str = Field("sv", pattern=r"^[a-z]{2}$", description="ISO 639-1, e.g. sv, en.")
    name: str | None = Field(None, max_length=200)


class LeaseIn(StrictIn):
    """Register a lease, or update it (a full snapshot)."""

    event_id: EventId
    lease_id: LeaseId
    property_id: Ident
    area: str | None = Field(None, max_length=128)
    municipality_code: str = Field(pattern=r"^[0-9]{4}$", description="Kommunkod, e.g. 0180.")
    monthly_rent_ore: int = Field(ge=0, le=10**10)
    start_date: IsoDate
    end_date: IsoDate | None = None
    team: Ident
    household_type: HouseholdType = "unknown"
    due_day: int | None = Field(
        None, ge=1, le=28, description="Day of the period's month rent is due, if not JB 12:20."
    )
    tenants: list[TenantIn] = Field(min_length=1, max_length=20)


class LeaseEndIn(StrictIn):
    """End a lease."""

    event_id: EventId
    end_date: IsoDate
    reason: Literal["moved_out", "terminated", "evicted", "other"] = "moved_out"


class ChargeIn(StrictIn):
    """Rent charged for a period (due date: the invoice's, else the lease's, else JB 12:20)."""

    event_id: EventId
    lease_id: LeaseId
    invoice_id: Ident
    ocr: str | None = Field(None, pattern=r"^[0-9]{2,25}$", description="OCR of the invoice.")
    period: Period
    amount_ore: Amount
    due_date: IsoDate | None = None


class PaymentIn(StrictIn):
    """A payment booked; `reference` is the lease id or the OCR of an invoice."""

    event_id: EventId
    lease_id: LeaseId | None = None
    payment_id: Ident
    amount_ore: Amount
    booked_date: IsoDate
    reference: str = Field(min_length=1, max_length=64)


class ReversalIn(StrictIn):
    """A booked payment reversed (e.g. a rejected direct debit)."""

    event_id: EventId
    lease_id: LeaseId
    reversal_id: Ident
    payment_id: Ident
    amount_ore: Amount
    booked_date: IsoDate
    reason: Reason | None = None


class CreditIn(StrictIn):
    """A credit issued on the lease."""

    event_id: EventId
    lease_id: LeaseId
    credit_id: Ident
    amount_ore: Amount
    booked_date: IsoDate
    invoice_id: Ident | None = None
    reason: Reason | None = None


class ComplaintIn(StrictIn):
    """A complaint received; the description stays in ingest's vault."""

    event_id: EventId
    lease_id: LeaseId
    complaint_id: Ident
    category: ComplaintCategory
    occurred_at: Instant
    description: str | None = Field(None, max_length=4000)


class ComplaintResolveIn(StrictIn):
    """A complaint closed."""

    event_id: EventId
    resolved_at: Instant
    resolution: Literal["unfounded", "corrected", "other"] = "other"


class WarningIn(StrictIn):
    """A warning (tillsägelse / rättelseanmaning) given to the tenant."""

    event_id: EventId
    lease_id: LeaseId
    warning_id: Ident
    category: Literal["disturbance", "neglect", "late_payment"]
    issued_date: IsoDate


class LeaseItem(LeaseIn):
    type: Literal["lease"]


class LeaseEndItem(LeaseEndIn):
    type: Literal["lease_end"]
    lease_id: LeaseId


class ChargeItem(ChargeIn):
    type: Literal["charge"]


class PaymentItem(PaymentIn):
    type: Literal["payment"]


class ReversalItem(ReversalIn):
    type: Literal["reversal"]


class CreditItem(CreditIn):
    type: Literal["credit"]


class ComplaintItem(ComplaintIn):
    type: Literal["complaint"]


class ComplaintResolvedItem(ComplaintResolveIn):
    type: Literal["complaint_resolved"]
    complaint_id: Ident


class WarningItem(WarningIn):
    type: Literal["warning"]


ITEM_TYPES: dict[str, type[StrictIn]] = {
    "lease": LeaseItem,
    "lease_end": LeaseEndItem,
    "charge": ChargeItem,
    "payment": PaymentItem,
    "reversal": ReversalItem,
    "credit": CreditItem,
    "complaint": ComplaintItem,
    "complaint_resolved": ComplaintResolvedItem,
    "warning": WarningItem,
}

BatchItem = Annotated[
    LeaseItem
    | LeaseEndItem
    | ChargeItem
    | PaymentItem
    | ReversalItem
    | CreditItem
    | ComplaintItem
    | ComplaintResolvedItem
    | WarningItem,
    Field(discriminator="type"),
]


class ItemError(BaseModel):
    """Why an event was rejected: the field (dotted path) and the reason."""

    field: str
    reason: str


class ItemResult(BaseModel):
    """The outcome of one event of a batch."""

    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    errors: list[ItemError] = []


class BatchResult(BaseModel):
    """The answer to a batch or import: counts and one result per event, in order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class Accepted(BaseModel):
    """The answer to a single event: accepted (published) or a duplicate of an earlier one."""

    event_id: str
    id: str = Field(description="The CloudEvent id: `{org_id}:{event_id}`.")
    status: Literal["accepted", "duplicate"]


class ContactRead(BaseModel):
    """A tenant's contact details, for the notifier at send time."""

    tenant_id: str
    phone: str | None
    language: str
    opted_out: bool


class LeaseContacts(BaseModel):
    """The contacts of every tenant on a lease."""

    lease_id: str
    org_id: str
    tenants: list[ContactRead]


class WatermarkIn(StrictIn):
    """The ERP has sent every payment booked on or before `booked_through` (org-wide)."""

    event_id: EventId
    booked_through: IsoDate = Field(
        description="Every payment booked on or before this day has been sent to Bokvar. "
        "Send it after the day's payments were accepted; not after today."
    )
