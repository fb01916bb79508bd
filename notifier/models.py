"""Tables owned by the notifier service.

Tenant phone numbers are never stored: a sent SMS keeps the number masked (last three
digits) and a keyed hash (for opt-out matching) next to the provider's message id.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from shared.db import UtcDateTime, inbox_table, new_metadata, outbox_table

metadata = new_metadata()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("lease_id", String(64), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("recipient_kind", String(10), nullable=False),  # tenant | staff
    Column("recipient_id", String(64), nullable=False),
    Column("signal_id", String(200)),
    Column("signal", String(64)),
    Column("task_id", String(200)),
    Column("template", String(64), nullable=False),
    Column("language", String(8)),
    Column("variables", JSON(), nullable=False),
    Column("channel", String(8)),
    Column("status", String(16), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("attempt_id", String(64)),
    Column("attempt_started_at", UtcDateTime()),
    Column("provider_sid", String(64)),
    Column("phone_masked", String(16)),
    Column("phone_hash", String(64)),
    Column("body_hash", String(64)),
    Column("detail", String(200)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Index("ix_notifications_status_due", "status", "due_at"),
    Index("ix_notifications_lease", "lease_id"),
    Index("ix_notifications_provider_sid", "provider_sid"),
    Index("ix_notifications_attempt", "attempt_id"),
    Index("ix_notifications_recipient_sent", "recipient_id", "sent_at"),
    Index("ix_notifications_phone_hash", "phone_hash"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("lease_id", String(64), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("signal_id", String(200)),
    Column("notification_id", String(200)),
    Column("team", String(64)),
    Column("assignee_id", String(64)),
    Column("escalated_to", String(64)),
    Column("status", String(16), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("due_at", UtcDateTime()),
    Column("outcome", String(32)),
    Column("promised_date", Date()),
    Column("note", Text()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime()),
    Column("completed_at", UtcDateTime()),
    Column("escalated_at", UtcDateTime()),
    Index("ix_tasks_status_due", "status", "due_at"),
    Index("ix_tasks_assignee", "assignee_id"),
    Index("ix_tasks_team", "team"),
    Index("ix_tasks_lease", "lease_id"),
)

staff = Table(
    "staff",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("team", String(64), nullable=False),
    Column("is_lead", Boolean(), nullable=False),
    Column("work_start", String(5), nullable=False),
    Column("work_end", String(5), nullable=False),
    Column("work_days", String(7), nullable=False),
    Column("active", Boolean(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_staff_team", "team"),
)

team_cursors = Table(
    "team_cursors",
    metadata,
    Column("team", String(64), primary_key=True),
    Column("last_assignee_id", String(64)),
)

leases = Table(
    "leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("team", String(64)),
    Column("tenant_ids", JSON(), nullable=False),
    Column("cleared_at", UtcDateTime()),
    Column("ended", Boolean(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

opt_outs = Table(
    "opt_outs",
    metadata,
    Column("phone_hash", String(64), primary_key=True),
    Column("tenant_id", String(64)),
    Column("lease_id", String(64)),
    Column("opted_out", Boolean(), nullable=False),
    Column("keyword", String(16), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_opt_outs_tenant", "tenant_id"),
)

# Signals the rules service withdrew (SignalRetracted): nothing more is sent or opened for
# them, even for an SMS whose send was already under way or a receipt that arrives later.
retracted_signals = Table(
    "retracted_signals",
    metadata,
    Column("signal_id", String(200), primary_key=True),
    Column("lease_id", String(64), nullable=False),
    Column("signal", String(64), nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("retracted_at", UtcDateTime(), nullable=False),
)
