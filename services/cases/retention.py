"""Retention: purge personal data of closed cases after the configured days, audited."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.store import AuditStore, CasesStore
from shared.runtime import Runtime

log = structlog.get_logger(__name__)


async def purge_expired(
    session: AsyncSession, *, now: datetime, retention_days: int, actor: str = "system"
) -> list[str]:
    """Purge every closed case past retention; each purge is itself an audit row."""
    store, audit = CasesStore(session), AuditStore(session)
    purged = await store.closed_unpurged(now - timedelta(days=retention_days))
    for case_id in purged:
        await store.purge(case_id, now)
        await audit.redact_reasons(case_id)
        await audit.append(
            at=now,
            actor=actor,
            role="system" if actor == "system" else "admin",
            org_id=None,
            action="retention.purge",
            outcome="done",
            case_id=case_id,
            reason=f"retention of {retention_days} days after closing",
        )
    if purged:
        log.info("cases.retention_purged", cases=len(purged))
    return purged


def start_retention_loop(rt: Runtime, *, retention_days: int, interval: float) -> None:
    """Run the purge every `interval` real seconds until the runtime stops."""

    async def loop() -> None:
        while not rt.stopping.is_set():
            try:
                async with rt.database.sessionmaker() as session, session.begin():
                    await purge_expired(session, now=rt.clock.now(), retention_days=retention_days)
            except Exception as exc:
                log.warning("cases.retention_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.stopping.wait(), timeout=interval)

    rt.spawn("cases-retention", loop)
