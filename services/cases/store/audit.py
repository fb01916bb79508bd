"""The append-only, hash-chained audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.audit import GENESIS, AuditRow, digest, first_broken, row_hash
from services.cases.models import audit_head, audit_log


class AuditStore:
    """Appends to and reads the audit chain."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(
        self,
        *,
        at: datetime,
        actor: str,
        role: str,
        org_id: str | None,
        action: str,
        outcome: str,
        case_id: str | None,
        reason: str | None,
    ) -> AuditRow:
        """Append one row; the UPDATE of the head row serialises concurrent appends."""
        head = await self._advance_head()
        if head is None:
            await self._restore_head()
            head = await self._advance_head()
            assert head is not None
        row = AuditRow(
            id=int(head.last_id),
            at=at,
            actor=actor[:100],
            role=role[:30],
            org_id=org_id,
            action=action,
            outcome=outcome,
            case_id=case_id,
            reason=reason,
            reason_sha256=digest(reason),
            prev_hash=head.last_hash,
        )
        chained = replace(row, hash=row_hash(head.last_hash, row))
        await self.session.execute(audit_log.insert().values(**asdict(chained)))
        await self.session.execute(
            update(audit_head).where(audit_head.c.id == 1).values(last_hash=chained.hash)
        )
        return chained

    async def _advance_head(self) -> Row[Any] | None:
        result = await self.session.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(last_id=audit_head.c.last_id + 1)
            .returning(audit_head.c.last_id, audit_head.c.last_hash)
        )
        return result.first()

    async def _restore_head(self) -> None:
        """Recreate the head row (the migration seeds it; a truncate may have removed it)."""
        last = (
            await self.session.execute(
                select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
            )
        ).first()
        await self.session.execute(
            audit_head.insert().values(
                id=1,
                last_id=last.id if last else 0,
                last_hash=last.hash if last else GENESIS,
            )
        )

    async def rows(self, *, chunk: int = 1000) -> AsyncIterator[AuditRow]:
        """Yield every row in id order."""
        last = 0
        while True:
            result = await self.session.execute(
                select(audit_log).where(audit_log.c.id > last).order_by(audit_log.c.id).limit(chunk)
            )
            batch = [AuditRow(**dict(r._mapping)) for r in result]
            if not batch:
                return
            for row in batch:
                yield row
            last = batch[-1].id

    async def verify(self) -> tuple[int, int | None]:
        """Return (rows checked, first broken row id or None)."""
        collected = [row async for row in self.rows()]
        return len(collected), first_broken(collected)

    async def for_case(self, case_id: str) -> list[AuditRow]:
        """Return the audit rows of one case."""
        result = await self.session.execute(
            select(audit_log).where(audit_log.c.case_id == case_id).order_by(audit_log.c.id)
        )
        return [AuditRow(**dict(r._mapping)) for r in result]

    async def redact_reasons(self, case_id: str) -> None:
        """Blank the free-text reasons of a case's rows (their digests keep the chain)."""
        await self.session.execute(
            update(audit_log).where(audit_log.c.case_id == case_id).values(reason=None)
        )
