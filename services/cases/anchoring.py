"""Anchor the audit chain outside the database: log its head (last id, hash, row count).

A log collector keeps these lines where the database's users cannot rewrite them;
`bokvar audit verify --anchors LOGFILE` then detects rows deleted from the chain's end
even when the head row was rewritten with them.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from services.cases.audit import Anchor
from services.cases.store import AuditStore
from shared.runtime import Runtime

log = structlog.get_logger(__name__)
ANCHOR_EVENT = "cases.audit_anchor"


async def log_anchor(rt: Runtime) -> Anchor | None:
    """Log the chain's current head as an anchor line; return it."""
    async with rt.database.sessionmaker() as session:
        head = await AuditStore(session).head()
    if head is not None:
        log.info(ANCHOR_EVENT, last_id=head.last_id, last_hash=head.last_hash, rows=head.rows)
    return head


def start_anchor_loop(rt: Runtime, *, interval: float) -> None:
    """Log an anchor at start, every `interval` real seconds and at shutdown."""

    async def loop() -> None:
        while True:
            try:
                await log_anchor(rt)
            except Exception as exc:
                log.warning("cases.audit_anchor_failed", error=type(exc).__name__)
            if rt.stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.stopping.wait(), timeout=interval)

    rt.spawn("cases-audit-anchor", loop)
