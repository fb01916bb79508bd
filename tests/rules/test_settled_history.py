"""Settled history on PostgreSQL: the consumer stores cuts, reads only the entries after
them, and raises exactly what reading every entry raises (`rules.engine.history`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select

from rules import models as m
from rules.consumer import apply_events, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.calendar import rent_due_date
from shared.clock import STOCKHOLM
from shared.events import CloudEvent, EventData, PaymentReversed, new_event
from tests.conftest import MakeDatabase
from tests.rules.stream import _charge, _lease, _pay

RENT = 800_000
LEASES = ("L1", "L2", "L3", "L4", "L5", "L6")
MONTHS = [(2025, m) for m in range(2, 13)] + [(2026, m) for m in range(1, 5)]


def _timeline() -> dict[date, list[EventData]]:
    """Fifteen months of rent for six households, arriving day by day."""
    days: dict[date, list[EventData]] = {date(2025, 1, 10): [_lease(x) for x in LEASES]}
    for year, month in MONTHS:
        period = f"{year}-{month:02d}"
        due = rent_due_date(year, month)
        days.setdefault(due - timedelta(days=14), []).extend(
            _charge(x, period, due) for x in LEASES
        )
        for lease in LEASES:
            paid, arrives = due - timedelta(days=2), due - timedelta(days=1)
            if lease == "L2" and period == "2026-03":
                continue  # never paid: the ladder
            if lease == "L3" and period == "2026-02":
                arrives = due + timedelta(days=25)  # paid on time, heard of late: retracted
            pay = _pay(lease, f"p-{lease}-{period}", RENT, paid)
            days.setdefault(arrives, []).append(pay)
        if period == "2026-03":
            # L4's payment of last September bounces, after its cut has passed March
            bounced = PaymentReversed(
                lease_id="L4",
                org_id="org1",
                reversal_id="r-L4",
                payment_id="p-L4-2025-09",
                amount_ore=RENT,
                booked_date=due + timedelta(days=6),
            )
            days.setdefault(due + timedelta(days=6), []).append(bounced)
            # L6: an invoice of last June, booked then, sent only now (into the settled past)
            old = _charge("L6", "2025-06", date(2025, 5, 30)).model_copy(
                update={"invoice_id": "late-L6"}
            )
            days.setdefault(due + timedelta(days=6), []).append(old)
        if period == "2026-01":  # L5: a correction invoice for a month long settled
            fix = _charge("L5", "2025-05", due).model_copy(update={"invoice_id": "fix-L5"})
            days.setdefault(due - timedelta(days=14), []).append(fix)
    return days


Outcome = tuple[list[str], list[tuple[object, ...]]]
Reads = dict[str, tuple[int, int, object, object]]


async def _run(make_database: MakeDatabase, *, cuts: bool) -> tuple[Outcome, Reads]:
    """Feed the timeline and evaluate every lease every day; return the signal ids in the
    order raised and the open deadlines at the end, and per lease at the end: the entries
    `evaluate_leases` reads, all its entries, its stored cut and the cut it read after."""
    db = await make_database("rules")
    policies = PolicySet.load()
    raised: list[str] = []
    timeline = _timeline()
    day, end = min(timeline), date(2026, 5, 31)
    n = 0
    while day <= end:
        now = datetime.combine(day, time(12), tzinfo=STOCKHOLM)
        async with db.sessionmaker() as session, session.begin():
            store = RulesStore(session)
            store.keeps_cuts = cuts
            events: list[CloudEvent[EventData]] = []
            for d in timeline.get(day, ()):
                n += 1
                events.append(new_event(d, id=f"e-{n}", source="test", time=now))
            await apply_events(store, events, now)
            out = await evaluate_leases(store, policies, LEASES, now)
            raised += [e.id for e in out]
        day += timedelta(days=1)
    async with db.sessionmaker() as session:
        d = m.deadlines.c
        rows = await session.execute(
            select(d.lease_id, d.kind, d.ref, d.stage, d.due_at).where(d.open).order_by(d.id)
        )
        store = RulesStore(session)
        states, _, _, stored = await store.load_for_evaluation(list(LEASES), end)
        whole = await store.load_states(list(LEASES))
        reads = {
            x: (len(states[x].entries), len(whole[x].entries), *stored.get(x, (None, None)))
            for x in LEASES
        }
        return (raised, [tuple(r) for r in rows]), reads


@pytest.mark.postgres
async def test_a_year_of_rent_raises_the_same_with_and_without_settled_history(
    make_database: MakeDatabase, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("cuts of settled history are kept on PostgreSQL only")
    whole, reads_whole = await _run(make_database, cuts=False)
    cut, reads = await _run(make_database, cuts=True)
    assert cut == whole
    raised = whole[0]
    # what the timeline calls for: L2's March ladder; L3's February stages withdrawn; L4's
    # bounced payment reopens March; L5's correction invoice, paid first, leaves January
    # open; L6's June invoice sent ten months late takes March's payment (the oldest charge
    # is paid first) and leaves March overdue; nothing for L1, who paid on time
    assert "L2:2026-03:late_rent_detected" in raised
    assert "L3:2026-02:late_rent_detected:retracted" in raised
    assert "L4:2026-03:late_rent_detected" in raised
    assert "L5:2026-01:late_rent_detected" in raised
    assert "L6:2026-03:late_rent_detected" in raised
    assert not any(s.startswith("L1:") for s in raised)
    # without cuts every entry is read; with them, those paid on time read a few entries
    # after a cut past more than a year of rent
    assert all(read == total and stored is None for read, total, stored, _ in reads_whole.values())
    read, total, stored, used = reads["L1"]
    assert used == stored and stored.entries >= 24, stored  # type: ignore[union-attr]
    assert read <= 6 < 30 <= total, (read, total)


async def test_the_migrated_schema_is_the_models(make_database: MakeDatabase) -> None:
    """Ledger entries are indexed by lease and booking day (the range after a cut, and the
    count before it), not by lease alone; alembic finds nothing left to generate."""
    db = await make_database("rules")

    def check(conn: Connection) -> None:
        names = [ix["name"] for ix in inspect(conn).get_indexes("ledger_entries")]
        assert [n for n in names if n.startswith("ix_")] == ["ix_ledger_entries_lease_id_booked_on"]
        migration = MigrationContext.configure(conn, opts={"compare_type": False})
        drift = [
            d
            for d in compare_metadata(migration, m.metadata)
            if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))
        ]
        assert drift == []

    async with db.engine.connect() as conn:
        await conn.run_sync(check)
