"""Tables owned by the ingest service: API clients, leases, the contact vault, dedup."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from shared.db import BigIntPK, UtcDateTime, inbox_table, new_metadata, outbox_table

metadata = new_metadata()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

api_clients = Table(
    "api_clients",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    # SHA-256 of a 32-byte random key: the key itself is shown once and never stored
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

leases = Table(
    "leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    # no index on org_id: leases are read by lease id only (each index entry costs a write)
    Column("org_id", String(64), nullable=False),
    Column("due_day", Integer(), nullable=True),
    Column("ended", Boolean(), nullable=False, default=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The contact vault: the only place names and phone numbers live.
tenant_contacts = Table(
    "tenant_contacts",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("pseudonym", String(64), nullable=False),  # not indexed: read by lease id only
    Column("name", String(200), nullable=True),
    Column("phone", String(20), nullable=True),
    Column("language", String(8), nullable=False),
    Column("opted_out", Boolean(), nullable=False, default=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# OCR reference -> invoice and lease, filled from the charges ingest has seen.
invoices = Table(
    "invoices",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("ocr", String(25), primary_key=True),
    Column("lease_id", String(64), nullable=False),
    Column("invoice_id", String(64), nullable=False),
)

# Complaints with their factual description (kept out of Kafka).
complaints = Table(
    "complaints",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("complaint_id", String(64), primary_key=True),
    Column("lease_id", String(64), nullable=False),
    Column("category", String(16), nullable=False),
    Column("description", Text(), nullable=True),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
)

# ERP event ids published within the dedup window (see ingest_dedup_window_days).
seen_events = Table(
    "seen_events",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False),
    # sha256 of the accepted body: a reused event id with another body is a conflict (409)
    Column("body_hash", String(64), nullable=True),
    Index("ix_seen_events_seen_at", "seen_at"),
)
