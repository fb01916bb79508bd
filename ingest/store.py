"""Every SQL statement of the ingest service. Stores flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.models import api_clients, complaints, invoices, leases, seen_events, tenant_contacts
from ingest.processing import ContactRow, Known, LeaseRow, Writes

CHUNK = 5000  # bound parameters per statement (SQLite and asyncpg allow 32,767)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(values)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class IngestStore:
    """Reads and writes of ingest's tables within one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self, table: Table) -> Any:
        if self.session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def create_client(
        self, *, org_id: str, name: str, key_hash: str, key_prefix: str, now: datetime
    ) -> None:
        """Store a new API client (the key's hash only)."""
        await self.session.execute(
            api_clients.insert().values(
                org_id=org_id, name=name, key_hash=key_hash, key_prefix=key_prefix, created_at=now
            )
        )

    async def client_org(self, key_hash: str) -> tuple[str, str] | None:
        """Return (org id, stored hash) of the active client with `key_hash`, if any."""
        row = (
            await self.session.execute(
                select(api_clients.c.org_id, api_clients.c.key_hash).where(
                    api_clients.c.key_hash == key_hash, api_clients.c.revoked_at.is_(None)
                )
            )
        ).first()
        return None if row is None else (row.org_id, row.key_hash)

    async def load_known(
        self,
        org_id: str,
        *,
        lease_ids: set[str],
        ocrs: set[str],
        complaint_ids: set[str],
        event_ids: set[str],
        seen_since: datetime,
    ) -> Known:
        """Load what a batch needs: its leases, OCR numbers, complaints and seen event ids."""
        known = Known()
        s = self.session
        for chunk in _chunks(ocrs):
            qi = select(invoices.c.ocr, invoices.c.lease_id, invoices.c.invoice_id).where(
                invoices.c.org_id == org_id, invoices.c.ocr.in_(chunk)
            )
            for inv in await s.execute(qi):
                known.ocr[inv.ocr] = (inv.lease_id, inv.invoice_id)
        for chunk in _chunks(complaint_ids):
            qc = select(complaints.c.complaint_id, complaints.c.lease_id).where(
                complaints.c.org_id == org_id, complaints.c.complaint_id.in_(chunk)
            )
            for c in await s.execute(qc):
                known.complaints[c.complaint_id] = c.lease_id
        # the leases that OCR numbers and complaints point at are needed too
        wanted = {lease for lease, _ in known.ocr.values()} | set(known.complaints.values())
        for chunk in _chunks(lease_ids | wanted):
            q = select(leases.c.lease_id, leases.c.org_id, leases.c.due_day)
            for r in await s.execute(q.where(leases.c.lease_id.in_(chunk))):
                known.leases[r.lease_id] = LeaseRow(r.org_id, r.due_day)
        for chunk in _chunks(event_ids):
            qs = select(seen_events.c.event_id, seen_events.c.body_hash).where(
                seen_events.c.org_id == org_id,
                seen_events.c.event_id.in_(chunk),
                seen_events.c.seen_at >= seen_since,
            )
            known.seen.update((r.event_id, r.body_hash) for r in await s.execute(qs))
        return known

    async def apply(self, org_id: str, writes: Writes, now: datetime) -> None:
        """Store the vault changes and the seen event ids of an acknowledged batch."""
        await self._upsert_leases(writes, now)
        await self._replace_contacts(writes.contacts, now)
        if writes.invoices:
            rows: list[dict[str, Any]] = [
                {"org_id": org_id, "ocr": ocr, "lease_id": lease, "invoice_id": inv}
                for ocr, (lease, inv) in writes.invoices.items()
            ]
            stmt = self._insert(invoices)
            stmt = stmt.on_conflict_do_update(
                index_elements=["org_id", "ocr"],
                set_={"lease_id": stmt.excluded.lease_id, "invoice_id": stmt.excluded.invoice_id},
            )
            await self.session.execute(stmt, rows)
        await self._store_complaints(org_id, writes)
        if writes.seen:
            upsert = self._insert(seen_events)
            stmt = upsert.on_conflict_do_update(
                index_elements=["org_id", "event_id"],
                set_={"seen_at": upsert.excluded.seen_at, "body_hash": upsert.excluded.body_hash},
            )
            seen = [
                {"org_id": org_id, "event_id": e, "seen_at": now, "body_hash": h}
                for e, h in writes.seen.items()
            ]
            await self.session.execute(stmt, seen)
        await self.session.flush()

    async def _upsert_leases(self, writes: Writes, now: datetime) -> None:
        if not writes.leases:
            return
        rows = [
            {
                "lease_id": lease_id,
                "org_id": row.org_id,
                "due_day": row.due_day,
                "ended": ended,
                "updated_at": now,
            }
            for lease_id, (row, ended) in writes.leases.items()
        ]
        stmt = self._insert(leases)
        stmt = stmt.on_conflict_do_update(
            index_elements=["lease_id"],
            set_={
                "due_day": stmt.excluded.due_day,
                "ended": stmt.excluded.ended,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        await self.session.execute(stmt, rows)

    async def _replace_contacts(self, contacts: dict[str, list[ContactRow]], now: datetime) -> None:
        if not contacts:
            return
        for chunk in _chunks(contacts):
            await self.session.execute(
                delete(tenant_contacts).where(tenant_contacts.c.lease_id.in_(chunk))
            )
        rows = [
            {
                "lease_id": lease_id,
                "tenant_id": c.tenant_id,
                "pseudonym": c.pseudonym,
                "name": c.name,
                "phone": c.phone,
                "language": c.language,
                "opted_out": False,
                "updated_at": now,
            }
            for lease_id, items in contacts.items()
            for c in items
        ]
        await self.session.execute(tenant_contacts.insert(), rows)

    async def _store_complaints(self, org_id: str, writes: Writes) -> None:
        if writes.complaints:
            rows = [
                {
                    "org_id": org_id,
                    "complaint_id": c.complaint_id,
                    "lease_id": c.lease_id,
                    "category": c.category,
                    "description": c.description,
                    "occurred_at": c.occurred_at,
                }
                for c in writes.complaints.values()
            ]
            stmt = self._insert(complaints)
            stmt = stmt.on_conflict_do_update(
                index_elements=["org_id", "complaint_id"],
                set_={
                    "lease_id": stmt.excluded.lease_id,
                    "category": stmt.excluded.category,
                    "description": stmt.excluded.description,
                    "occurred_at": stmt.excluded.occurred_at,
                },
            )
            await self.session.execute(stmt, rows)
        for complaint_id, resolved_at in writes.resolved.items():
            await self.session.execute(
                update(complaints)
                .where(complaints.c.org_id == org_id, complaints.c.complaint_id == complaint_id)
                .values(resolved_at=resolved_at)
            )

    async def lease_contacts(self, lease_id: str) -> tuple[str, Sequence[Any]] | None:
        """Return (org id, contact rows) of a lease, or None when the lease is unknown."""
        org = (
            await self.session.execute(select(leases.c.org_id).where(leases.c.lease_id == lease_id))
        ).scalar_one_or_none()
        if org is None:
            return None
        rows = (
            await self.session.execute(
                select(
                    tenant_contacts.c.tenant_id,
                    tenant_contacts.c.phone,
                    tenant_contacts.c.language,
                    tenant_contacts.c.opted_out,
                )
                .where(tenant_contacts.c.lease_id == lease_id)
                .order_by(tenant_contacts.c.tenant_id)
            )
        ).all()
        return org, rows

    async def purge_seen(self, before: datetime) -> int:
        """Forget event ids seen before `before` (outside the dedup window)."""
        result = await self.session.execute(
            delete(seen_events).where(seen_events.c.seen_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)
