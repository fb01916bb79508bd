"""The sweep on a real database: two instances at once emit each signal once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from rules import models
from rules.consumer import apply_events, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from rules.sweep import sweep_once
from shared.clock import STOCKHOLM, ManualClock
from shared.db import Database
from tests.conftest import MakeDatabase
from tests.rules.stream import envelopes
from tests.rules.test_pipeline import START


async def _load_without_sweeping(db: Database, clock: ManualClock, until: date) -> None:
    policies = PolicySet.load()
    day = START
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        while day <= until:
            touched = await apply_events(store, envelopes(day))
            assert await evaluate_leases(store, policies, sorted(touched), clock.now()) == []
            day += timedelta(days=1)


async def test_two_sweepers_at_once_emit_each_signal_once(make_database: MakeDatabase) -> None:
    db = await make_database("rules")
    clock = ManualClock(datetime.combine(START, time(9), tzinfo=STOCKHOLM))
    await _load_without_sweeping(db, clock, date(2026, 3, 5))
    clock.set(datetime.combine(date(2026, 3, 10), time(0, 5), tzinfo=STOCKHOLM))
    second = Database(db.url.render_as_string(hide_password=False), "rules")
    if db.sqlite:  # the same file, another engine: a second process would look like this
        second = db
    policies = PolicySet.load()
    try:
        results = await asyncio.gather(
            sweep_once(db, policies, clock, chunk=2),
            sweep_once(second, policies, clock, chunk=2),
            sweep_once(db, policies, clock, chunk=2, workers=3),
        )
    finally:
        if second is not db:
            await second.dispose()
    async with db.sessionmaker() as session:
        staged = Counter((await session.execute(select(models.outbox.c.event_id))).scalars())
        claimed = set((await session.execute(select(models.emitted_signals.c.signal_id))).scalars())
    assert all(n == 1 for n in staged.values()), staged
    assert (
        set(staged)
        == claimed
        == {
            f"{lease}:2026-03:{stage}"
            for lease in ("L2", "L3")
            for stage in ("late_rent_detected", "personal_contact_needed", "forfeiture_possible")
        }
    )
    assert sum(r.signals for r in results) == 6


async def test_a_second_sweep_finds_nothing_due(make_database: MakeDatabase) -> None:
    db = await make_database("rules")
    clock = ManualClock(datetime.combine(START, time(9), tzinfo=STOCKHOLM))
    await _load_without_sweeping(db, clock, date(2026, 3, 5))
    clock.set(datetime.combine(date(2026, 3, 10), time(0, 5), tzinfo=STOCKHOLM))
    policies = PolicySet.load()
    first = await sweep_once(db, policies, clock)
    assert first.leases == 4 and first.signals == 6  # L5 (complaints only) has no deadline
    again = await sweep_once(db, policies, clock)
    assert again.leases == 0 and again.signals == 0
