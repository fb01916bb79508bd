"""RulesStore reads: the one-round-trip evaluation input equals the per-table reads."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import orjson
import pytest
from sqlalchemy import delete, func, insert, select, text

from rules import models as m
from rules.consumer import apply_events, evaluate_leases
from rules.policy import PolicySet
from rules.store import _PG_ENTRIES_SQL, _PG_SIDE_SQL, RulesStore
from shared.clock import STOCKHOLM
from shared.db.bulk import text_arrays
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
        states, emitted, open_, _ = await store.load_for_evaluation(ids)
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
        states, _, _, _ = await store.load_for_evaluation(ids)
        assert states == await store.load_states(ids)
        seqs = [[e.seq for e in s.entries] for s in states.values()]
        assert all(s == sorted(s) for s in seqs)
        assert sum(len(s) > 1 for s in seqs) >= 3


async def test_bulk_writes_keep_every_value_as_sent(make_database: MakeDatabase) -> None:
    # on PostgreSQL each column travels as an array literal, or as JSON when a value
    # needs an escape: both must store what was sent, whatever the characters
    db = await make_database("rules")
    odd = ["a,b", "{x}", "null", "NULL", "", " sp ", 'q"uote', "back\\slash", "Å ä ö", "ü\u2028"]
    known = datetime(2026, 2, 20, 9, 0, 0, 123456, tzinfo=STOCKHOLM)
    rows = [
        {
            "lease_id": f"L-{n}",
            "kind": "charge",
            "entry_id": value,
            "amount_ore": 800_000 + n,
            "booked_on": START,
            "period": "2026-03",
            "due_date": START + timedelta(days=n),
            "invoice_id": value or None,
            "payment_id": None,
            "known_at": known if n % 2 else None,
        }
        for n, value in enumerate(odd)
    ]
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        await store.upsert_leases(
            [
                {
                    "lease_id": r["lease_id"],
                    "org_id": "o,{1}",
                    "monthly_rent_ore": 1,
                    "due_day": None,
                }
                for r in rows
            ]
        )
        plain = [r for r in rows if not {'"', "\\"} & set(r["entry_id"])]
        assert text_arrays(plain, tuple(plain[0])) is not None  # as array literals
        await store.add_entries(plain)
        assert text_arrays(rows, tuple(rows[0])) is None  # as JSON; the plain ones conflict
        await store.add_entries(rows)
    async with db.sessionmaker() as session:
        states = await RulesStore(session).load_states([r["lease_id"] for r in rows])
    for r in rows:
        state = states[r["lease_id"]]
        assert state.org_id == "o,{1}"
        (entry,) = state.entries
        assert (entry.entry_id, entry.invoice_id, entry.amount_ore, entry.due_date) == (
            r["entry_id"],
            r["invoice_id"],
            r["amount_ore"],
            r["due_date"],
        )
        assert entry.known_at == r["known_at"] and entry.booked_on == START


async def test_entries_already_there_are_left_alone_and_the_batch_goes_on(
    make_database: MakeDatabase,
) -> None:
    # PostgreSQL inserts a batch's entries with a plain INSERT in a savepoint, and again
    # with ON CONFLICT DO NOTHING when one is there already: the same rows as SQLite's
    # insert-or-ignore (the stored entry and the first of a batch's duplicates kept), and
    # the transaction's other writes, before and after, are committed with them
    db = await make_database("rules")

    def entry(entry_id: str, amount: int, kind: str = "payment") -> dict[str, object]:
        return {
            "lease_id": "L-1",
            "kind": kind,
            "entry_id": entry_id,
            "amount_ore": amount,
            "booked_on": START,
            "period": None,
            "due_date": None,
            "invoice_id": None,
            "payment_id": None,
            "known_at": None,
        }

    lease = {"lease_id": "L-1", "org_id": "org1", "monthly_rent_ore": 1, "due_day": None}
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        await store.add_entries([entry("p1", 100), entry("p2", 200)])
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        await store.upsert_leases([lease])
        await store.add_entries([entry("p3", 300), entry("p1", 999), entry("p3", 333)])
        await store.add_entries([entry("p4", 400), entry("p1", 400, kind="credit")])
        await store.upsert_leases([lease | {"monthly_rent_ore": 2}])
    async with db.sessionmaker() as session:
        (state,) = (await RulesStore(session).load_states(["L-1"])).values()
    assert state.monthly_rent_ore == 2
    got = [(e.kind, e.entry_id, e.amount_ore) for e in state.entries]
    assert got == [
        ("payment", "p1", 100),
        ("payment", "p2", 200),
        ("payment", "p3", 300),
        ("payment", "p4", 400),
        ("credit", "p1", 400),
    ]


@pytest.mark.postgres
async def test_per_lease_lookups_use_the_indexes_after_tables_were_analyzed_empty(
    make_database: MakeDatabase, backend: str
) -> None:
    """Once autovacuum has analyzed a table while it was empty (`deadlines`, `complaints`
    right after an onboarding), the planner would scan it whole for every lease of a chunk
    until the next analyze; the store's transaction prices sequential scans out."""
    if backend != "postgresql":
        pytest.skip("a PostgreSQL planner question")
    db = await make_database("rules")
    async with db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
    ids = orjson.dumps([f"L{i}" for i in range(500)]).decode()
    async with db.sessionmaker() as session, session.begin():
        driver = await RulesStore(session)._driver()
        for sql in (_PG_SIDE_SQL, _PG_ENTRIES_SQL):
            plan = "\n".join(r[0] for r in await driver.fetch("EXPLAIN " + sql, ids))
            assert "Seq Scan" not in plan, plan
