"""The sweep: find due deadlines (indexed), evaluate those leases, stage signals in the outbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog

from rules import models as m
from rules.consumer import apply_watermark, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.bus import OutboxRelay, add_to_outbox
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
    relay: OutboxRelay | None = None,
) -> SweepResult:
    """Process every deadline due now, `chunk` leases per transaction.

    On PostgreSQL `workers` chunks run concurrently (rows are claimed with SKIP LOCKED),
    so one chunk's database round trips overlap another's engine work. Each chunk that
    staged signals wakes `relay` once committed, so they go out while the next is
    evaluated (a watermark that releases thousands of held stages at month-end).
    """
    now = clock.now()
    totals = [0, 0, 0]
    await complete_watermarks(database, now)

    async def worker() -> None:
        while True:
            async with database.sessionmaker() as session, session.begin():
                store = RulesStore(session)
                due = await store.due_leases(now, limit=chunk)
                if not due:
                    return
                events = await evaluate_leases(store, policies, due, now)
                await add_to_outbox(session, m.outbox, events, clock=clock)
            if events and relay is not None:
                relay.wake()
            totals[0] += len(due)
            totals[1] += len(events)
            totals[2] += 1

    await asyncio.gather(*(worker() for _ in range(1 if database.sqlite else max(1, workers))))
    leases, signals, chunks = totals
    if leases:
        log.info("rules.sweep_done", leases=leases, signals=signals, chunks=chunks)
    return SweepResult(leases, signals, chunks)


async def complete_watermarks(database: Database, now: datetime) -> None:
    """Apply watermarks whose last copies two consumers stored at once (neither saw all),
    making the leases they release due at `now`, for the sweep that called this.

    Each sweep runs this first; the consumer wakes the sweep after a batch that brought
    a watermark (or a copy) has committed (`rules.consumer.make_handler`): of two
    transactions that stored the last copies at once, the one that commits last wakes it
    after both committed.
    """
    async with database.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        for org_id, through, received_at in await store.complete_watermarks():
            held = await apply_watermark(store, org_id, through, received_at, now)
            await store.make_due(held, now)


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
    wake: asyncio.Event | None = None,
) -> None:
    """Sweep every `interval` real seconds, right away when the local date changes, and
    when `wake` is set (a consumer batch that brought a watermark has committed)."""
    last_day = None
    while not stopping.is_set():
        if wake is not None:
            wake.clear()  # before the sweep: a wake while it runs sweeps again at once
        try:
            await sweep_once(database, policies, clock, chunk=chunk, workers=workers, relay=relay)
        except Exception as exc:  # database down: try again next round
            log.warning("rules.sweep_failed", error=type(exc).__name__)
        last_day = local_date(clock.now())
        waited = 0.0
        step = min(interval, 1.0)
        while waited < interval and not stopping.is_set():
            if wake is not None and wake.is_set():
                break
            await _either(stopping, wake, timeout=step)
            waited += step
            if local_date(clock.now()) != last_day:
                break  # local midnight passed: sweep now


async def _either(first: asyncio.Event, second: asyncio.Event | None, *, timeout: float) -> None:
    """Wait until either event is set, at most `timeout` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in (first, second) if e is not None]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
