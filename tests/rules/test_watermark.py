"""Watermarks and retractions through the consumer path and the sweep, on the real database."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta

import orjson
import pytest

from rules.consumer import apply_events, evaluate_leases, make_handler
from rules.models import org_watermarks, outbox
from rules.policy import PolicySet
from rules.store import RulesStore
from rules.sweep import sweep_loop, sweep_once
from shared.bus import Batch, OutboxRelay, Producer, Received, add_to_outbox
from shared.bus.broker import EmbeddedBroker
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
from shared.topics import LEDGER_EVENTS, RISK_SIGNALS
from tests.conftest import MakeDatabase
from tests.helpers import read_topic, wait_for
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
    # the sweep applies the set, and its workers evaluate the lease it made due
    assert (await sweep_once(db, POLICIES, clock)).signals == 1
    [late] = [e.data for e in await _staged_since(db, 0)]
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"
    async with db.sessionmaker() as session:
        assert (await session.execute(org_watermarks.select())).one().booked_through == date(
            2026, 3, 1
        )


def _watermark_event(
    at: datetime, n: int | None = None, of: int | None = None
) -> CloudEvent[EventData]:
    """The watermark "booked through 03-01" (copy `n` of `of`, or the single one) at `at`."""
    data = LedgerWatermarkAdvanced(
        org_id=ORG, booked_through=date(2026, 3, 1), partition=n, partitions=of
    )
    return new_event(data, id=f"wm-{n}", source="t", time=at)


async def test_a_watermark_batch_leaves_the_stages_it_releases_to_the_sweep_it_wakes(
    make_database: MakeDatabase, broker: EmbeddedBroker, producer: Producer
) -> None:
    # the consumer's batch stores the watermark and makes the held lease due now; once it
    # has committed it wakes the sweep, which evaluates the lease at the same instant and
    # wakes the relay as soon as its chunk has committed: the alarm reaches Kafka
    db, clock = await _charged(make_database)
    at = _at(date(2026, 3, 2), 2)
    clock.set(at)
    woken: list[bool] = []

    async def wake_sweep() -> None:
        woken.append(True)

    handle = make_handler(POLICIES, clock, wake_sweep=wake_sweep)
    async with db.sessionmaker() as session:
        async with session.begin():
            batch = Batch(
                session, [Received(_watermark_event(at), LEDGER_EVENTS, 0, 0)], outbox, clock
            )
            await handle(batch)
            await batch.write_outbox()
            assert woken == []  # not before the commit
        await batch.committed()
    assert batch.emitted == [] and woken == [True]
    relay = OutboxRelay(db, outbox, producer)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop, interval=60))  # flushes when woken
    try:
        result = await sweep_once(db, POLICIES, clock, relay=relay)
        assert (result.leases, result.signals) == (1, 1)
        [record] = await read_topic(broker.bootstrap_servers, RISK_SIGNALS, count=1)
    finally:
        stop.set()
        await relaying
    late = decode(record.value, record.headers).data
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"
    assert late.inputs["settled_by"] == "watermark"
    assert late.occurred_at == local_midnight(date(2026, 3, 2))


async def test_the_sweep_loop_sweeps_as_soon_as_a_watermark_batch_wakes_it(
    make_database: MakeDatabase,
) -> None:
    # the loop sweeps once an hour here; the watermark's batch wakes it, and the stage it
    # released is in the outbox at once, not in an hour
    db, clock = await _charged(make_database)
    at = _at(date(2026, 3, 2), 2)
    clock.set(at)
    wake, stopping = asyncio.Event(), asyncio.Event()
    wake.set()  # cleared when the first sweep begins (it finds the stage held)
    loop = asyncio.create_task(sweep_loop(db, POLICIES, clock, stopping, interval=3600, wake=wake))

    async def first_sweep_began() -> bool:
        return not wake.is_set()

    async def wake_sweep() -> None:
        wake.set()

    async def staged() -> list[CloudEvent[EventData]]:
        return await _staged_since(db, 0)

    try:
        await wait_for(first_sweep_began, what="the first sweep")
        handle = make_handler(POLICIES, clock, wake_sweep=wake_sweep)
        received = [Received(_watermark_event(at), LEDGER_EVENTS, 0, 0)]
        async with db.sessionmaker() as session:
            async with session.begin():
                batch = Batch(session, received, outbox, clock)
                await handle(batch)
            await batch.committed()
        [late] = [e.data for e in await wait_for(staged, timeout=5, what="the late alarm")]
    finally:
        stopping.set()
        await loop
    assert isinstance(late, SignalRaised) and late.signal == "late_rent_detected"


@pytest.mark.postgres
async def test_last_copies_stored_at_once_are_applied_by_the_sweep_the_later_batch_wakes(
    make_database: MakeDatabase, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (BOKVAR_TEST_DATABASE_URL): SQLite has one writer")
    # two loops (or instances) apply the last two of three copies in transactions open at
    # once: each counts two. Each wakes the sweep once committed; the wake after the later
    # commit finds all three, so the set is applied now, not at the next sweep (30 s)
    db, clock = await _charged(make_database)
    at = _at(date(2026, 3, 2), 2)
    clock.set(at)
    commits: list[int] = []
    woken: list[int] = []  # the commits done when the sweep was woken

    async def wake_sweep() -> None:
        woken.append(len(commits))

    handle = make_handler(POLICIES, clock, wake_sweep=wake_sweep)
    assert await _consume(db, clock, _watermark_event(at, 0, 3).data, at=at) == []
    async with db.sessionmaker() as one, db.sessionmaker() as two:
        batches = []
        for session, n in ((one, 1), (two, 2)):
            await session.begin()
            event = _watermark_event(at, n, 3)
            batch = Batch(session, [Received(event, LEDGER_EVENTS, 0, 0)], outbox, clock)
            await handle(batch)
            batches.append(batch)
        for session, batch in zip((one, two), batches, strict=True):
            await session.commit()
            commits.append(1)
            await batch.committed()
            if len(commits) == 1:  # a sweep woken now, the other copy not committed: nothing
                assert await _sweep(db, clock, at) == []
    assert woken == [1, 2]
    [late] = [e.data for e in await _sweep(db, clock, at)]
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
