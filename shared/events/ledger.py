"""Rent ledger events (topic `ledger.events`). Money is integer öre."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.base import EventData, Ore, Period
from shared.topics import LEDGER_EVENTS


class RentCharged(EventData):
    """Rent for a period was invoiced."""

    event_type = "se.bokvar.ledger.rent_charged.v1"
    topic = LEDGER_EVENTS

    invoice_id: str = Field(min_length=1, max_length=64)
    ocr: str | None = Field(None, max_length=25, description="OCR reference of the invoice.")
    period: Period
    amount_ore: Ore = Field(gt=0)
    due_date: date
    due_date_source: Literal["invoice", "lease", "jb_12_20"] = Field(
        description="Where the due date came from: the invoice, the lease or JB 12:20."
    )


class PaymentReceived(EventData):
    """A payment was booked on the lease."""

    event_type = "se.bokvar.ledger.payment_received.v1"
    topic = LEDGER_EVENTS

    payment_id: str = Field(min_length=1, max_length=64)
    amount_ore: Ore = Field(gt=0)
    booked_date: date
    invoice_id: str | None = Field(None, description="Set when the reference was an OCR.")


class PaymentReversed(EventData):
    """A booked payment was reversed (e.g. a rejected direct debit)."""

    event_type = "se.bokvar.ledger.payment_reversed.v1"
    topic = LEDGER_EVENTS

    reversal_id: str = Field(min_length=1, max_length=64)
    payment_id: str = Field(min_length=1, max_length=64)
    amount_ore: Ore = Field(gt=0)
    booked_date: date
    reason: str | None = Field(None, max_length=200)


class CreditIssued(EventData):
    """A credit was issued on the lease (reduces what is owed)."""

    event_type = "se.bokvar.ledger.credit_issued.v1"
    topic = LEDGER_EVENTS

    credit_id: str = Field(min_length=1, max_length=64)
    amount_ore: Ore = Field(gt=0)
    booked_date: date
    invoice_id: str | None = None
    reason: str | None = Field(None, max_length=200)


class LedgerWatermarkAdvanced(EventData):
    """The organisation's ERP has sent every payment booked on or before `booked_through`.

    Org-wide: `lease_id` is always `*` and the Kafka key is `org:{org_id}` (every watermark
    of an organisation in one partition, in order). Rules keeps the latest per organisation
    in its database, so every instance's sweep uses it; an older one changes nothing.
    """

    event_type = "se.bokvar.ledger.watermark_advanced.v1"
    topic = LEDGER_EVENTS

    lease_id: Literal["*"] = Field("*", description="Always `*`: the event is about no lease.")
    booked_through: date = Field(description="Every payment booked on or before this day was sent.")

    @property
    def key(self) -> str:
        """Return the Kafka key `org:{org_id}`: one organisation's watermarks stay in order."""
        return f"org:{self.org_id}"
