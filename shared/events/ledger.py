"""Rent ledger events (topic `ledger.events`). Money is integer öre."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Literal

from aiokafka.partitioner import murmur2
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

    Org-wide: `lease_id` is always `*`. Ingest publishes one copy into every partition of
    `ledger.events` (`partition` of `partitions`), each behind the payments the ERP sent
    before it in that partition; rules applies the watermark once it has seen every copy,
    so it can never overtake a payment queued in another partition. Rules keeps the
    latest per organisation in its database; an older one changes nothing.
    """

    event_type = "se.bokvar.ledger.watermark_advanced.v1"
    topic = LEDGER_EVENTS

    lease_id: Literal["*"] = Field("*", description="Always `*`: the event is about no lease.")
    booked_through: date = Field(description="Every payment booked on or before this day was sent.")
    partition: int | None = Field(
        None, ge=0, description="The ledger.events partition this copy is for (None: one copy)."
    )
    partitions: int | None = Field(
        None, ge=1, le=10_000, description="How many copies (partitions) there are in all."
    )

    @property
    def key(self) -> str:
        """Return the Kafka key: `org:{org_id}`, or for a copy a key hashing to its partition."""
        if self.partition is None or self.partitions is None:
            return f"org:{self.org_id}"
        return partition_key(f"org:{self.org_id}", self.partition, self.partitions)


@lru_cache(maxsize=1024)
def partition_key(prefix: str, partition: int, partitions: int) -> str:
    """Return `prefix:n` for the first n whose key Kafka's default partitioner (murmur2)
    sends to `partition` of `partitions`, as the producer and Kafka clients choose it."""
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} not in 0..{partitions - 1}")
    n = 0
    while (murmur2(f"{prefix}:{n}".encode()) & 0x7FFFFFFF) % partitions != partition:
        n += 1
    return f"{prefix}:{n}"
