"""RulesStore reads: the one-round-trip evaluation input equals the per-table reads."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import delete, func, insert, select

from rules import models as m
from rules.consumer import apply_events, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.clock import STOCKHOLM
from shared.events import WarningIssued, new_event
from tests.conftest import MakeDatabase
from tests.rules.stream import envelopes, stream
from tests.rules.test_pipeline import START


async def test_load_for_evaluation_equals_the_per_table_reads(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("rules")
    policies = PolicySet.load()
    days = sorted({d for d, _ in stream()})
    warning = WarningIssued(
        lease_id="L1", org_id="org1", warning_id="w-1", category="disturbance", issued_date=START
    )
    extra = [new_event(warning, id="evt-w-1", source="test", time=datetime.now(tz=STOCKHOLM))]
    for n, day in enumerate(days):
        async with db.sessionmaker() as session, session.begin():
            store = RulesStore(session)
            touched = await apply_events(store, envelopes(day) + (extra if n == 0 else []))
            now = datetime.combine(day + timedelta(days=1), time(0, 5), tzinfo=STOCKHOLM)
            await evaluate_leases(store, policies, sorted(touched), now)
    ids = ["L0-unknown", "L1", "L2", "L3", "L4", "L5", "nope"]
    async with db.sessionmaker() as session:
        store = RulesStore(session)
        states, emitted, open_ = await store.load_for_evaluation(ids)
        want_states = await store.load_states(ids)
        assert list(states) == list(want_states)
        assert states == want_states
        assert emitted == await store.emitted_ids(ids)
        assert open_ == await store.open_deadlines(list(want_states))
    # the stream reaches every kind of row the loader merges
    assert any(s.complaints for s in states.values())
    assert any(s.warnings for s in states.values())
    assert any(s.legal_steps for s in states.values())
    assert any(s.plans for s in states.values())
    assert emitted and open_


async def test_entries_come_back_in_insertion_order_whatever_the_heap_order(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("rules")
    policies = PolicySet.load()
    for day in sorted({d for d, _ in stream()}):
        async with db.sessionmaker() as session, session.begin():
            store = RulesStore(session)
            touched = await apply_events(store, envelopes(day))
            now = datetime.combine(day + timedelta(days=1), time(0, 5), tzinfo=STOCKHOLM)
            await evaluate_leases(store, policies, sorted(touched), now)
    async with db.sessionmaker() as session, session.begin():
        # each lease's first entry deleted and written again (same id): on PostgreSQL it
        # now lies after the others in the heap and in the index, and is read last
        t = m.ledger_entries
        first = select(func.min(t.c.id)).group_by(t.c.lease_id)
        rows = [r._asdict() for r in (await session.execute(select(t).where(t.c.id.in_(first))))]
        await session.execute(delete(t).where(t.c.id.in_([r["id"] for r in rows])))
        await session.execute(insert(t), rows)
    ids = ["L1", "L2", "L3", "L4", "L5"]
    async with db.sessionmaker() as session:
        store = RulesStore(session)
        states, _, _ = await store.load_for_evaluation(ids)
        assert states == await store.load_states(ids)
        seqs = [[e.seq for e in s.entries] for s in states.values()]
        assert all(s == sorted(s) for s in seqs)
        assert sum(len(s) > 1 for s in seqs) >= 3
