"""The sweep: find due deadlines (indexed), evaluate those leases, stage signals in the outbox."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from rules.consumer import apply_watermark, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.bus import OutboxRelay
from shared.clock import Clock, local_date
from shared.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did."""

    leases: int
    signals: int
    chunks: int


async def sweep_once(
    database: Database,
    policies: PolicySet,
    clock: Clock,
    *,
    chunk: int = 1000,
    workers: int = 2,
) -> SweepResult:
    """Process every deadline due now, `chunk` leases per transaction.

    On PostgreSQL `workers` chunks run concurrently (rows are claimed with SKIP LOCKED),
    so one chunk's database round trips overlap another's engine work.
    """
    now = clock.now()
    totals = [0, 0, 0]
    totals[1] += await complete_watermarks(database, policies, clock)

    async def worker() -> None:
        while True:
            async with database.sessionmaker() as session, session.begin():
                store = RulesStore(session)
                due = await store.due_leases(now, limit=chunk)
                if not due:
                    return
                events = await evaluate_leases(store, policies, due, now)
                await store.stage_outbox(events, clock.now())
            totals[0] += len(due)
            totals[1] += len(events)
            totals[2] += 1

    await asyncio.gather(*(worker() for _ in range(1 if database.sqlite else max(1, workers))))
    leases, signals, chunks = totals
    if leases:
        log.info("rules.sweep_done", leases=leases, signals=signals, chunks=chunks)
    return SweepResult(leases, signals, chunks)


async def complete_watermarks(database: Database, policies: PolicySet, clock: Clock) -> int:
    """Apply watermarks whose last copies two consumers stored at once (neither saw all);
    return the number of events staged in the outbox.

    The consumer runs this after a batch that stored a copy has committed
    (`rules.consumer.make_handler`), the sweep every round: of two transactions that
    stored the last copies at once, the one that commits last sees both afterwards.
    """
    now = clock.now()
    staged = 0
    async with database.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        for org_id, through, received_at in await store.complete_watermarks():
            held = await apply_watermark(store, org_id, through, received_at, now)
            events = await evaluate_leases(store, policies, held, now)
            await store.stage_outbox(events, now)
            staged += len(events)
    return staged


async def sweep_loop(
    database: Database,
    policies: PolicySet,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    interval: float,
    relay: OutboxRelay | None = None,
    chunk: int = 1000,
    workers: int = 2,
) -> None:
    """Sweep every `interval` real seconds, and right away when the local date changes."""
    last_day = None
    while not stopping.is_set():
        try:
            result = await sweep_once(database, policies, clock, chunk=chunk, workers=workers)
            if result.signals and relay is not None:
                relay.wake()
        except Exception as exc:  # database down: try again next round
            log.warning("rules.sweep_failed", error=type(exc).__name__)
        last_day = local_date(clock.now())
        waited = 0.0
        step = min(interval, 1.0)
        while waited < interval and not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=step)
            waited += step
            if local_date(clock.now()) != last_day:
                break  # local midnight passed: sweep now
