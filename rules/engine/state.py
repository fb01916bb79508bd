"""Plain, immutable inputs of the engine: a lease's ledger entries, complaints, legal steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

EntryKind = Literal["charge", "payment", "reversal", "credit"]


# Not frozen, but hashable and compared by value as if it were: one is built per stored
# row on every evaluation, and a frozen dataclass's __init__ (object.__setattr__ per field)
# costs six times as much. Never assign to a field.
@dataclass(slots=True, unsafe_hash=True)
class LedgerEntry:
    """One ledger event; `entry_id` is the ERP's business id (invoice, payment, ...)."""

    entry_id: str
    kind: EntryKind
    amount_ore: int
    booked_on: date
    period: str | None = None
    due_date: date | None = None
    invoice_id: str | None = None
    payment_id: str | None = None
    seq: int = 0
    known_at: datetime | None = None  # when the event reached Bokvar (None: long known)


@dataclass(frozen=True, slots=True)
class Complaint:
    """A complaint about the household (no free text)."""

    complaint_id: str
    category: str
    occurred_on: date
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class Warning:
    """A warning given to the tenant (tillsägelse / rättelseanmaning)."""

    warning_id: str
    category: str
    issued_on: date


@dataclass(frozen=True, slots=True)
class LegalStep:
    """A recorded step of the legal timeline (from the case service)."""

    step_id: str
    step: str
    step_date: date


@dataclass(frozen=True, slots=True)
class Plan:
    """An agreed payment plan: (due date, amount) installments."""

    plan_id: str
    agreed_on: date
    installments: tuple[tuple[date, int], ...]


# Not frozen, as LedgerEntry: one is built per lease on every evaluation (the frozen
# __init__ cost ~1.2 µs against ~0.3). Never assign to a field; `dataclasses.replace` it.
@dataclass(slots=True, unsafe_hash=True)
class LeaseState:
    """Everything the engine knows about one lease."""

    lease_id: str
    org_id: str
    monthly_rent_ore: int = 0
    entries: tuple[LedgerEntry, ...] = ()
    complaints: tuple[Complaint, ...] = ()
    warnings: tuple[Warning, ...] = ()
    legal_steps: tuple[LegalStep, ...] = ()
    plans: tuple[Plan, ...] = ()
    ended_on: date | None = None


@dataclass(frozen=True, slots=True)
class SignalDraft:
    """A signal the engine decided to raise, with its explanation (risk attached later)."""

    signal_id: str
    signal: str
    rule: str
    occurred_at: datetime
    reason_sv: str
    reason_en: str
    period: str | None = None
    due_date: date | None = None
    days_late: int | None = None
    arrears_ore: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, unsafe_hash=True)  # not frozen, as LedgerEntry: built per stage
class Deadline:
    """A future instant at which a stage may fire; the sweep looks at due ones."""

    kind: str
    ref: str
    stage: str
    due_on: date
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Watermark:
    """The organisation's word that every payment booked through a day has been sent."""

    booked_through: date
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RetractionDraft:
    """A signal raised earlier that a late-arriving payment proved wrong."""

    retraction_id: str
    signal_id: str
    signal: str
    rule: str
    occurred_at: datetime
    reason_code: Literal["paid_on_time", "payment_booked_before_stage", "data_corrected"]
    reason_sv: str
    reason_en: str
    period: str | None = None
    due_date: date | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
