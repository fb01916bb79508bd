"""settled history: a cut per lease, ledger entries indexed by lease and booking day

Revision ID: 5b1c0e7d2f3a
Revises: e02e6f7a9e64
Create Date: 2026-12-03 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1c0e7d2f3a"
down_revision: str | None = "e02e6f7a9e64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settled_before", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("settled_entries", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("settled_period", sa.String(length=7), nullable=True))
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_lease_id_booked_on"),
            ["lease_id", "booked_on"],
            unique=False,
        )
        batch_op.drop_index(batch_op.f("ix_ledger_entries_lease_id"))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_lease_id"), ["lease_id"], unique=False)
        batch_op.drop_index(batch_op.f("ix_ledger_entries_lease_id_booked_on"))
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("settled_period")
        batch_op.drop_column("settled_entries")
        batch_op.drop_column("settled_before")
