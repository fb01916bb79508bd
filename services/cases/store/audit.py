"""The append-only, hash-chained audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.audit import (
    GENESIS,
    Anchor,
    AuditRow,
    Verdict,
    digest,
    row_hash,
    verify_chain,
)
from services.cases.models import audit_head, audit_log

log = structlog.get_logger(__name__)


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
        """Recreate the head row (the migration seeds it; a truncate may have removed it).

        Appends go on, but a missing head is suspicious: it is logged, and only the anchors
        kept outside the database can tell whether rows went with it.
        """
        last = (
            await self.session.execute(
                select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
            )
        ).first()
        log.warning("cases.audit_head_restored", last_id=last.id if last else 0)
        await self.session.execute(
            audit_head.insert().values(
                id=1,
                last_id=last.id if last else 0,
                last_hash=last.hash if last else GENESIS,
            )
        )

    async def rows(self, *, chunk: int = 1000, up_to: int | None = None) -> AsyncIterator[AuditRow]:
        """Yield every row (up to id `up_to`) in id order."""
        last = 0
        while True:
            query = select(audit_log).where(audit_log.c.id > last)
            if up_to is not None:
                query = query.where(audit_log.c.id <= up_to)
            result = await self.session.execute(query.order_by(audit_log.c.id).limit(chunk))
            batch = [AuditRow(**dict(r._mapping)) for r in result]
            if not batch:
                return
            for row in batch:
                yield row
            last = batch[-1].id

    async def head(self) -> Anchor | None:
        """Return the head row as an anchor (its row count included), None when missing."""
        found = (await self.session.execute(select(audit_head))).first()
        if found is None:
            return None
        count = (
            await self.session.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.id <= found.last_id)
            )
        ).scalar_one()
        return Anchor(int(found.last_id), found.last_hash, int(count))

    async def check(self, anchors: Sequence[Anchor] = ()) -> Verdict:
        """Verify links, the end against the head, and the anchors kept elsewhere."""
        head = await self.head()
        up_to = head.last_id if head is not None else None
        collected = [row async for row in self.rows(up_to=up_to)]
        if head is None and collected:
            end = collected[-1].id
            return Verdict(len(collected), end + 1, "the head row is missing")
        return verify_chain(collected, head=head, anchors=anchors)

    async def verify(self) -> tuple[int, int | None]:
        """Return (rows checked, first broken or missing row id, or None)."""
        verdict = await self.check()
        return verdict.rows, verdict.first_broken

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
