"""drop the unused indexes on leases.org_id and tenant_contacts.pseudonym

No query reads either table by these columns (leases and contacts are read by lease id,
the primary key), and each lease snapshot paid for them: 5,000-row upserts measured
apart at 50,000-200,000 rows, server time per row: leases 9.2 us with ix_leases_org_id
(one organisation's leases share one key) against 2.8 without, tenant_contacts 6.0 with
ix_tenant_contacts_pseudonym (random HMAC keys) against 2.9 without. A lookup by
pseudonym (e.g. an erasure endpoint) would bring its index back with it.

Revision ID: c4e1d2a7b9f0
Revises: 0a5bc0a8f889
Create Date: 2026-12-03 12:35:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4e1d2a7b9f0"
down_revision: str | None = "0a5bc0a8f889"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_contacts_pseudonym"))
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_org_id"))


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leases_org_id"), ["org_id"], unique=False)
    with op.batch_alter_table("tenant_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_contacts_pseudonym"), ["pseudonym"], unique=False
        )
