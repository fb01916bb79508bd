"""seen events body hash

Revision ID: 0a5bc0a8f889
Revises: 7b0fa0d3a390
Create Date: 2026-12-03 07:11:03.951477
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0a5bc0a8f889"
down_revision: str | None = "7b0fa0d3a390"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.drop_column("body_hash")
