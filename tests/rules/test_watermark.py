"""Watermarks and retractions through the consumer path and the sweep, on the real database."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import orjson
import pytest

from rules.consumer import apply_events, evaluate_leases, make_handler
from rules.models import org_watermarks, outbox
from rules.policy import PolicySet
from rules.store import RulesStore
from rules.sweep import complete_watermarks, sweep_once
from shared.bus import Batch, Received, add_to_outbox
from shared.clock import STOCKHOLM, ManualClock, local_midnight
from shared.db import Database
from shared.events import (
    CloudEvent,
    EventData,
    LedgerWatermarkAdvanced,
    SignalRaised,
    SignalRetracted,
    decode,
    new_event,
)
from shared.topics import LEDGER_EVENTS
from tests.conftest import MakeDatabase
from tests.rules.stream import MARCH_DUE, ORG, RENT, _charge, _lease, _pay

POLICIES = PolicySet.load()


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=STOCKHOLM)


async def _consume(
    db: Database, clock: ManualClock, *data: EventData, at: datetime
) -> list[CloudEvent[EventData]]:
    """Apply events arriving at `at` as the consumer does; return what it emits."""
    clock.set(at)
    events = [
        new_event(d, id=f"e-{at.isoformat()}-{n}", source="t", time=at) for n, d in enumerate(data)
    ]
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        touched = await apply_events(store, events, clock.now())
        out = await evaluate_leases(store, POLICIES, sorted(touched), clock.now())
        await add_to_outbox(session, outbox, out, clock=clock)
    return out


async def _sweep(db: Database, clock: ManualClock, at: datetime) -> list[CloudEvent[EventData]]:
    """Sweep at `at`; return the events the sweep staged in the outbox."""
    clock.set(at)
    async with db.sessionmaker() as session:
        before = await RulesStore(session).count(outbox)
    await sweep_once(db, POLICIES, clock)
    return await _staged_since(db, before)


async def _staged_since(db: Database, before: int) -> list[CloudEvent[EventData]]:
    """The events in the outbox after its first `before` rows."""
    async with db.sessionmaker() as session:
        rows = (await session.execute(outbox.select().order_by(outbox.c.id))).all()
    return [
        decode(r.value, [(k, v.encode()) for k, v in orjson.loads(r.headers)])
        for r in rows[before:]
    ]


def _midnight(day: date) -> datetime:
    return local_midnight(day) + timedelta(minutes=1)


async def test_watermark_releases_held_stages_and_a_late_payment_retracts_once(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("rules")
    clock = ManualClock(_at(date(2026, 2, 20)))
    feb20 = _at(date(2026, 2, 20))
    await _consume(db, clock, _lease("L1"), _charge("L1", "2026-03", MARCH_DUE), at=feb20)
    wm = LedgerWatermarkAdvanced(org_id=ORG, booked_through=date(2026, 2, 26))
    await _consume(db, clock, wm, at=_at(date(2026, 2, 27), 2))
    # Monday 03-02 is the stage day; the watermark still says "through 02-26": held
    assert await _sweep(db, clock, _midnight(date(2026, 3, 2))) == []
    # an older watermark changes nothing; then "through Sunday" releases the stage now
    old = LedgerWatermarkAdvanced(org_id=ORG, booked_through=date(2026, 2, 20))
    assert await _consume(db, clock, old, at=_at(date(2026, 3, 2), 1)) == []
    async with db.sessionmaker() as session:
        stored = (await session.execute(org_watermarks.select())).one()
    assert stored.booked_through == date(2026, 2, 26)
    wm = LedgerWatermarkAdvanced(org_id=ORG, booked_through=date(2026, 3, 1))
    # the batch that brings the watermark evaluates the held lease: released at once
    [late] = [e.data for e in await _consume(db, clock, wm, at=_at(date(2026, 3, 2), 2))]
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"
    assert late.inputs["settled_by"] == "watermark"
    # Friday's payment, booked on the due date, reaches Bokvar on Tuesday: withdrawn
    out = await _consume(db, clock, _pay("L1", "p1", RENT, MARCH_DUE), at=_at(date(2026, 3, 3), 11))
    [retraction] = out
    assert isinstance(retraction.data, SignalRetracted)
    assert retraction.id == "L1:2026-03:late_rent_detected:retracted"
    assert retraction.data.signal_id == late.signal_id
    assert retraction.data.reason_code == "paid_on_time"
    assert "förfallodagen" in retraction.data.reason_sv
    # re-evaluations and later sweeps neither retract again nor clear
    assert await _consume(db, clock, _lease("L1"), at=_at(date(2026, 3, 4))) == []
    assert await _sweep(db, clock, _midnight(date(2026, 3, 10))) == []


async def _charged(make_database: MakeDatabase) -> tuple[Database, ManualClock]:
    """A lease charged for March on 02-20 (no payment, no watermark yet)."""
    db = await make_database("rules")
    clock = ManualClock(_at(date(2026, 2, 20)))
    await _consume(
        db, clock, _lease("L1"), _charge("L1", "2026-03", MARCH_DUE), at=_at(date(2026, 2, 20))
    )
    return db, clock


async def test_a_watermark_counts_once_every_partition_copy_is_in(
    make_database: MakeDatabase,
) -> None:
    db, clock = await _charged(make_database)
    assert await _sweep(db, clock, _midnight(date(2026, 3, 2))) == []  # held: no watermark

    def copy(n: int) -> LedgerWatermarkAdvanced:
        return LedgerWatermarkAdvanced(
            org_id=ORG, booked_through=date(2026, 3, 1), partition=n, partitions=3
        )

    at = _at(date(2026, 3, 2), 2)
    # two of three copies: a payment may still be queued in the third partition
    assert await _consume(db, clock, copy(0), copy(2), at=at) == []
    async with db.sessionmaker() as session:
        assert (await session.execute(org_watermarks.select())).all() == []
    [late] = [e.data for e in await _consume(db, clock, copy(1), at=at)]
    assert isinstance(late, SignalRaised) and late.inputs["watermark"] == "2026-03-01"


async def test_the_sweep_applies_a_watermark_whose_last_copies_raced(
    make_database: MakeDatabase,
) -> None:
    # two rules instances store the last two copies at once; neither saw all three
    db, clock = await _charged(make_database)
    at = _at(date(2026, 3, 2), 2)
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        for n in range(3):
            await store.add_watermark_copy(ORG, date(2026, 3, 1), n, 3, at)
    clock.set(at + timedelta(seconds=1))
    # counted with the sweep's signals, so the sweep loop wakes the outbox relay for it
    assert (await sweep_once(db, POLICIES, clock)).signals == 1
    [late] = [e.data for e in await _staged_since(db, 0)]
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"
    async with db.sessionmaker() as session:
        assert (await session.execute(org_watermarks.select())).one().booked_through == date(
            2026, 3, 1
        )


@pytest.mark.postgres
async def test_last_copies_stored_at_once_are_applied_when_the_later_batch_commits(
    make_database: MakeDatabase, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (BOKVAR_TEST_DATABASE_URL): SQLite has one writer")
    # two loops (or instances) apply the last two of three copies in transactions open at
    # once: each counts two. The consumer's after-commit check applies the set as soon as
    # the later one has committed, not at the next sweep (30 s by default).
    db, clock = await _charged(make_database)
    at = _at(date(2026, 3, 2), 2)
    clock.set(at)
    staged: list[int] = []

    async def complete() -> None:
        staged.append(await complete_watermarks(db, POLICIES, clock))

    handle = make_handler(POLICIES, clock, complete_watermarks=complete)
    first, second, third = (
        new_event(
            LedgerWatermarkAdvanced(
                org_id=ORG, booked_through=date(2026, 3, 1), partition=n, partitions=3
            ),
            id=f"copy-{n}",
            source="t",
            time=at,
        )
        for n in range(3)
    )
    assert await _consume(db, clock, first.data, at=at) == []
    async with db.sessionmaker() as one, db.sessionmaker() as two:
        batches = []
        for session, event in ((one, second), (two, third)):
            await session.begin()
            batch = Batch(session, [Received(event, LEDGER_EVENTS, 0, 0)], outbox, clock)
            await handle(batch)
            await batch.write_outbox()
            batches.append(batch)
        assert [b.emitted for b in batches] == [[], []]  # each saw two of three
        await one.commit()
        await batches[0].committed()
        assert staged == [0]  # the other copy is not committed yet
        await two.commit()
        await batches[1].committed()
    assert staged == [0, 1]
    [late] = [e.data for e in await _staged_since(db, 0)]
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"
    assert late.inputs["watermark"] == "2026-03-01"


async def test_an_organisations_first_watermark_releases_a_stage_the_lag_held_days_away(
    make_database: MakeDatabase,
) -> None:
    # March rent (due Friday 02-27) is sent on Friday 03-13, after every stage of its ladder.
    # With no watermark yet the lag holds them until Tuesday 03-17 (one banking day after
    # the charge arrived, then the weekend). The organisation's first watermark, an hour
    # later, covers them: the late alarms go out now, not four days later.
    db = await make_database("rules")
    arrived = _at(date(2026, 3, 13), 10)
    clock = ManualClock(arrived)
    await _consume(db, clock, _lease("L1"), at=_at(date(2026, 2, 20)))
    assert await _consume(db, clock, _charge("L1", "2026-03", MARCH_DUE), at=arrived) == []
    wm = LedgerWatermarkAdvanced(org_id=ORG, booked_through=date(2026, 3, 12))
    out = [e.data for e in await _consume(db, clock, wm, at=_at(date(2026, 3, 13), 11))]
    assert all(isinstance(d, SignalRaised) for d in out)
    assert [(d.signal, d.inputs["settled_by"]) for d in out if isinstance(d, SignalRaised)] == [
        ("late_rent_detected", "watermark"),
        ("personal_contact_needed", "watermark"),
        ("forfeiture_possible", "watermark"),
    ]
