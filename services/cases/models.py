"""Tables owned by the cases service."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from shared.db import BigIntPK, UtcDateTime, inbox_table, new_metadata, outbox_table

metadata = new_metadata()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

CLOSED_STATUSES = ("resolved", "evicted")
_OPEN_WHERE = text("status NOT IN ('resolved', 'evicted')")

cases = Table(
    "cases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolution", String(30), nullable=True),
    Column("priority", String(10), nullable=False),
    Column("assignee", String(100), nullable=True),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("trigger_signal_id", String(200), nullable=True),
    Column("reason", String(300), nullable=False),
    # Household attributes copied from lease.events, for statistics (never names/personnummer).
    Column("municipality_code", String(4), nullable=True),
    Column("household_type", String(30), nullable=True),
    Column("age_band", String(10), nullable=True),
    Column("gender", String(10), nullable=True),
    Column("purged_at", UtcDateTime(), nullable=True),
    Index("ix_cases_org_id", "org_id"),
    Index("ix_cases_lease_id", "lease_id"),
    # At most one open case per lease, enforced by the database (SQLite and PostgreSQL).
    Index(
        "uq_cases_open_lease",
        "lease_id",
        unique=True,
        sqlite_where=_OPEN_WHERE,
        postgresql_where=_OPEN_WHERE,
    ),
)

# Everything that happened to a lease (signals, SMS, tasks) and to its case (notes,
# meetings, plans, referrals, legal steps, status changes). case_id is null for lease
# activity before any case was open; such rows are attached when a case opens.
timeline = Table(
    "timeline",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("lease_id", String(64), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("ref_id", String(200), nullable=False),
    Column("name", String(40), nullable=True),
    Column("status", String(30), nullable=True),
    Column("outcome", String(30), nullable=True),
    Column("signal_id", String(200), nullable=True),
    Column("due_date", Date(), nullable=True),
    Column("summary", String(300), nullable=True),
    Column("text", Text(), nullable=True),
    Column("actor", String(100), nullable=True),
    Column("data", JSON(), nullable=False),
    Index("ix_timeline_case_id", "case_id"),
    Index("ix_timeline_lease_id_kind", "lease_id", "kind"),
    Index("ix_timeline_org_id_kind_at", "org_id", "kind", "at"),
)

households = Table(
    "households",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("municipality_code", String(4), nullable=False),
    Column("household_type", String(30), nullable=False),
    Column("age_band", String(10), nullable=True),
    Column("gender", String(10), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

referrals = Table(
    "referrals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("recipient", String(30), nullable=False),
    Column("notice", String(40), nullable=True),
    Column("legal_basis", String(200), nullable=False),
    Column("referred_on", Date(), nullable=False),
    Column("summary", String(1000), nullable=True),
    Column("amount_owed_ore", BigInteger(), nullable=True),
    Column("outcome", String(100), nullable=True),
    Column("statutory", Boolean(), nullable=False),
    Column("created_by", String(100), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_referrals_case_id", "case_id"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("scope", JSON(), nullable=False),
    Column("given_on", Date(), nullable=False),
    Column("expires_on", Date(), nullable=True),
    Column("withdrawn_at", UtcDateTime(), nullable=True),
    Column("document_ref", String(200), nullable=True),
    Column("created_by", String(100), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_consents_case_id", "case_id"),
)

payment_plans = Table(
    "payment_plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("agreed_on", Date(), nullable=False),
    Column("installment_count", Integer(), nullable=False),
    Column("total_ore", BigInteger(), nullable=True),
    Column("created_by", String(100), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_payment_plans_case_id", "case_id"),
)

installments = Table(
    "installments",
    metadata,
    Column("plan_id", String(64), ForeignKey("payment_plans.id"), primary_key=True),
    Column("seq", Integer(), primary_key=True),
    Column("due_date", Date(), nullable=False),
    Column("amount_ore", BigInteger(), nullable=False),
)

meetings = Table(
    "meetings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("held_on", Date(), nullable=False),
    Column("participants", JSON(), nullable=True),
    Column("outcome", String(1000), nullable=True),
    Column("created_by", String(100), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_meetings_case_id", "case_id"),
)

legal_steps = Table(
    "legal_steps",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("step", String(40), nullable=False),
    Column("step_date", Date(), nullable=False),
    Column("amount_owed_ore", BigInteger(), nullable=True),
    Column("created_by", String(100), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_legal_steps_case_id", "case_id"),
)

org_settings = Table(
    "org_settings",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("home_count", Integer(), nullable=False),
    Column("baseline_year", Integer(), nullable=True),
    Column("baseline_evictions", Integer(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Append-only, hash-chained: hash = sha256(prev_hash + canonical row). The free-text
# reason is chained through its digest so a retention purge can blank it and the chain
# still verifies.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(30), nullable=False),
    Column("org_id", String(64), nullable=True),
    Column("action", String(60), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("case_id", String(64), nullable=True),
    Column("reason", String(300), nullable=True),
    Column("reason_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_case_id", "case_id"),
)

# One row (id=1) that serialises appends to the chain: UPDATE locks it first.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("last_id", BigInteger(), nullable=False),
    Column("last_hash", String(64), nullable=False),
)
