"""Tables owned by the rules service."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from shared.db import BigIntPK, UtcDateTime, inbox_table, new_metadata, outbox_table

metadata = new_metadata()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

leases = Table(
    "leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("monthly_rent_ore", BigInteger(), nullable=False, default=0),
    Column("due_day", Integer(), nullable=True),
    Column("ended_on", Date(), nullable=True),
    # settled history (rules.engine.history.Cut): the entries booked before `settled_before`
    # (`settled_entries` of them, charges up to period `settled_period`) need not be read
    Column("settled_before", Date(), nullable=True),
    Column("settled_entries", Integer(), nullable=True),
    Column("settled_period", String(7), nullable=True),
)

# One row per business event: charge, payment, reversal or credit (unique by kind + id).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("lease_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("entry_id", String(64), nullable=False),
    Column("amount_ore", BigInteger(), nullable=False),
    Column("booked_on", Date(), nullable=False),
    Column("period", String(7), nullable=True),
    Column("due_date", Date(), nullable=True),
    Column("invoice_id", String(64), nullable=True),
    Column("payment_id", String(64), nullable=True),
    # when the event reached Bokvar: a backfilled charge waits for its payments (settlement)
    Column("known_at", UtcDateTime(), nullable=True),
    UniqueConstraint("kind", "entry_id"),
    # a lease's entries, and those booked from a day on (after its settled history)
    Index("ix_ledger_entries_lease_id_booked_on", "lease_id", "booked_on"),
)

# The latest ledger watermark per organisation ("every payment booked through X was sent").
org_watermarks = Table(
    "org_watermarks",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("booked_through", Date(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

# Copies of a watermark seen so far, one per ledger.events partition: the watermark counts
# once every copy is in (each follows the payments sent before it in its partition).
watermark_copies = Table(
    "watermark_copies",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("booked_through", Date(), primary_key=True),
    Column("partition", Integer(), primary_key=True),
    Column("partitions", Integer(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("category", String(16), nullable=False),
    Column("occurred_on", Date(), nullable=False),
    Column("resolution", String(16), nullable=True),
)

warnings = Table(
    "warnings",
    metadata,
    Column("warning_id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("category", String(16), nullable=False),
    Column("issued_on", Date(), nullable=False),
)

legal_steps = Table(
    "legal_steps",
    metadata,
    Column("step_id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("step", String(40), nullable=False),
    Column("step_date", Date(), nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("agreed_on", Date(), nullable=False),
    Column("installments", Text(), nullable=False, comment="JSON [[due_date, amount_ore], ...]"),
)

# Future instants at which a stage may fire; the sweep reads the due, open ones by index.
deadlines = Table(
    "deadlines",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("stage", String(64), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("open", Boolean(), nullable=False, server_default=text("true")),
    Index(
        "ix_deadlines_due_at_open",
        "due_at",
        postgresql_where=text("open"),
        sqlite_where=text("open"),
    ),
)

# Every signal ever emitted: the primary key makes a stage fire once, across replays,
# restarts and instances.
emitted_signals = Table(
    "emitted_signals",
    metadata,
    Column("signal_id", String(200), primary_key=True),
    Column("lease_id", String(64), nullable=False, index=True),
    Column("signal", String(40), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("emitted_at", UtcDateTime(), nullable=False),
)
