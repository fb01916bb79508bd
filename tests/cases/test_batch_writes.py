"""A consumer batch upserts its households in one statement; reads in the batch see them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from services.cases.store import CasesStore
from tests.conftest import MakeDatabase
from tests.helpers import recorded_statements

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _home(lease_id: str, household_type: str) -> dict[str, Any]:
    return {
        "lease_id": lease_id,
        "org_id": "org1",
        "municipality_code": "0180",
        "household_type": household_type,
        "age_band": "30-39",
        "gender": None,
        "updated_at": NOW,
    }


async def test_a_batch_of_lease_events_costs_one_household_statement(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("cases")
    async with db.sessionmaker() as session, session.begin():  # a household from before
        await CasesStore(session).upsert_household(_home("L-0", "single_adult"))
    with recorded_statements(db) as statements:
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=True)
            for i in range(50):
                await store.upsert_household(_home(f"L-{i}", "single_adult"))
            await store.upsert_household(_home("L-0", "couple_with_children"))  # latest wins
            assert (await store.household("L-0") or {})["household_type"] == "couple_with_children"
            await store.flush_entries()
    assert sum("households" in s for s in statements) == 1, statements
    async with db.sessionmaker() as session:
        store = CasesStore(session)
        assert (await store.household("L-0") or {})["household_type"] == "couple_with_children"
        assert (await store.household("L-49") or {})["household_type"] == "single_adult"


async def test_prefetched_households_are_one_query_and_yield_to_writes_in_the_batch(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("cases")
    async with db.sessionmaker() as session, session.begin():
        for i in range(3):
            await CasesStore(session).upsert_household(_home(f"L-{i}", "single_adult"))
    with recorded_statements(db) as statements:
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=True)
            await store.prefetch_households(["L-0", "L-1", "L-2", "L-9"])
            assert (await store.household("L-1") or {})["household_type"] == "single_adult"
            assert await store.household("L-9") is None
            reads = sum("households" in s for s in statements)
            await store.upsert_household(_home("L-2", "couple"))
            await store.flush_entries()  # written and no longer buffered: not the prefetched row
            assert (await store.household("L-2") or {})["household_type"] == "couple"
    assert reads == 1, statements


async def _opening_scenario(db: Any, *, batched: bool) -> tuple[list[Any], list[Any], list[str]]:
    """Signals that open cases for leases with stored and buffered unattached history, a
    payment that settles one of them in the same batch, and entries after the openings."""
    from services.cases import actions
    from services.cases.models import cases, timeline
    from shared.events import NotificationStatusChanged
    from tests.cases.conftest import signal

    emitted: list[str] = []

    async def emit(event: Any) -> None:
        emitted.append(f"{event.id} {event.data.model_dump_json()}")

    def sms(lease: str, n: int, minutes: int) -> NotificationStatusChanged:
        return NotificationStatusChanged(
            lease_id=lease,
            org_id="org1",
            notification_id=f"N-{lease}-{n}",
            signal_id=f"{lease}:2026-03:late_rent_detected",
            signal="late_rent_detected",
            status="deferred",
            template="late_rent_sv",
            at=NOW + timedelta(minutes=minutes),
        )

    async with db.sessionmaker() as session, session.begin():  # history from earlier batches
        store = CasesStore(session)
        for lease in ("L-1", "L-2"):
            await store.upsert_household(_home(lease, "single_adult"))
            late = signal(lease, "late_rent_detected", at=NOW - timedelta(days=3))
            await actions.on_signal(store, late.id, late.data, now=NOW, emit=emit)
    async with db.sessionmaker() as session, session.begin():  # one consumer batch
        store = CasesStore(session, batched=batched)
        if batched:
            await store.prefetch_open(["L-1", "L-2", "L-3"])
            await store.prefetch_households(["L-1", "L-2", "L-3"])
        for step, (lease, kind) in enumerate(
            [
                ("L-1", "sms"),
                ("L-2", "sms"),
                ("L-1", "forfeiture_possible"),
                ("L-1", "sms"),
                ("L-3", "forfeiture_possible"),
                ("L-2", "forfeiture_possible"),
                ("L-2", "arrears_cleared"),
                ("L-2", "sms"),
                ("L-3", "personal_contact_needed"),
            ]
        ):
            now = NOW + timedelta(minutes=step)
            if kind == "sms":
                await actions.on_notification(store, sms(lease, step, step))
            else:
                ev = signal(lease, kind, at=now)
                await actions.on_signal(store, ev.id, ev.data, now=now, emit=emit)
        await store.flush_entries()
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(cases).order_by(cases.c.id))).all()
        entries = (await session.execute(select(timeline).order_by(timeline.c.id))).all()
    # per lease in the order written, without the serial id
    ordered = sorted((e.lease_id, n, tuple(e)[1:]) for n, e in enumerate(entries))
    return [tuple(r) for r in rows], [e[2] for e in ordered], emitted


async def test_cases_opened_in_a_batch_are_written_together_with_the_same_result(
    make_database: MakeDatabase,
) -> None:
    from services.cases.models import cases, households, timeline

    db = await make_database("cases")
    with recorded_statements(db) as statements:
        batched = await _opening_scenario(db, batched=True)
    async with db.sessionmaker() as session, session.begin():
        for table in (timeline, cases, households):
            await session.execute(delete(table))
    one_by_one = await _opening_scenario(db, batched=False)
    assert batched == one_by_one
    case_ids = {row[0] for row in batched[0]}
    assert len(case_ids) == 3 and all(e[2] in case_ids for e in batched[1] if e[0] != "L-2")
    assert sum(s.startswith("INSERT INTO cases") for s in statements) <= 2, statements
    assert sum(s.startswith("UPDATE timeline SET case_id") for s in statements) <= 2


async def test_a_read_in_the_batch_sees_the_deferred_case(make_database: MakeDatabase) -> None:
    from services.cases.models import cases

    db = await make_database("cases")
    async with db.sessionmaker() as session, session.begin():
        store = CasesStore(session, batched=True)
        await store.prefetch_open(["L-1"])
        values = {c.name: None for c in cases.columns}
        values |= {
            "id": "C-1",
            "lease_id": "L-1",
            "org_id": "org1",
            "status": "new",
            "priority": "normal",
            "opened_at": NOW,
            "updated_at": NOW,
            "reason": "test",
        }
        await store.create(values)
        assert (await store.open_case("L-1") or {})["id"] == "C-1"  # from memory
        found = await store.session.execute(select(cases.c.id).where(cases.c.lease_id == "L-1"))
        assert list(found.scalars()) == ["C-1"]  # written before the read


# Values the array-literal syntax reads differently if written naively (a comma, braces,
# `null`, blanks, quotes, a backslash, non-ASCII, empty); with a quote or a backslash the
# batch goes as array parameters instead, without either as one literal text per column.
AWKWARD = ["a,b", "{x}", "null", "NULL", " sp ", "", "Malmö ÅÄÖ", "x;y", "semi'quote"]
ESCAPED = ['dq"uote', "back\\slash"]


async def test_batched_households_store_awkward_values_as_given(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("cases")
    for values in (AWKWARD, AWKWARD + ESCAPED):
        homes = {f"L-{i}-{len(values)}": v for i, v in enumerate(values)}
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=True)
            for lease_id, value in homes.items():
                home = _home(lease_id, value) | {"org_id": value, "gender": value or None}
                await store.upsert_household(home | {"age_band": None})
            await store.flush_entries()
        async with db.sessionmaker() as session:
            store = CasesStore(session)
            for lease_id, value in homes.items():
                row = await store.household(lease_id) or {}
                assert (row["household_type"], row["org_id"]) == (value, value)
                assert (row["gender"], row["age_band"]) == (value or None, None)
                assert row["updated_at"] == NOW


async def test_batched_timeline_rows_are_stored_as_a_row_at_a_time_stores_them(
    make_database: MakeDatabase,
) -> None:
    # PostgreSQL: the batch's rows travel as one JSON record set; the same values, the
    # same JSON text in `data` (the column's serializer: separators, \u escapes), the
    # same order (ids), awkward text included
    from sqlalchemy import cast as sql_cast
    from sqlalchemy.types import Text

    from services.cases.models import timeline

    odd = 'a "quoted", back\\slash\nnew line, Malmö ÅÄÖ, {braces}, null'
    data = {"reason_sv": odd, "n": 3, "list": [1, None, "ö"], "nested": {"x": 1.5}}

    async def write(batched: bool, lease_id: str) -> list[Any]:
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=batched)
            for n, summary in enumerate([odd, None, "", "plain"]):
                when = NOW if n % 2 else NOW + timedelta(microseconds=7)  # ties on `at`
                await store.add_entry(
                    lease_id=lease_id,
                    org_id="org1",
                    at=when,
                    kind="note",
                    ref_id=f"r{n}",
                    summary=summary,
                    text=odd if n == 0 else None,
                    due_date=NOW.date(),
                    data=data if n < 3 else {},
                )
            await store.flush_entries()
        async with db.sessionmaker() as session:
            query = select(*timeline.c, sql_cast(timeline.c.data, Text)).where(
                timeline.c.lease_id == lease_id
            )
            rows = (await session.execute(query.order_by(timeline.c.id))).all()
        return [tuple(r)[2:] for r in rows]  # without id and lease id

    db = await make_database("cases")
    one_by_one = await write(False, "L-1")
    assert await write(True, "L-2") == one_by_one
    assert [r[4] for r in one_by_one] == ["r0", "r1", "r2", "r3"]
    assert one_by_one[0][-1] == json.dumps(data)  # the text as SQLAlchemy's serializer wrote it


async def test_batched_timeline_rows_keep_the_instant_and_data_text_of_single_inserts(
    make_database: MakeDatabase,
) -> None:
    """The batch's one-statement insert (PostgreSQL: a JSON record set) stores the same
    instant for an `at` in any zone and the same `data` text as the insert per row."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import Text
    from sqlalchemy import cast as sql_cast

    from services.cases.models import timeline

    db = await make_database("cases")
    sthlm = ZoneInfo("Europe/Stockholm")
    ats = [
        datetime(2026, 3, 29, 1, 30, tzinfo=sthlm),  # the hour before summer time
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=sthlm),  # the second 02:30
        datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC),
    ]
    data = {"reason_sv": "Hyran för 2026-03", "n": 1.5, "q": 'a"b\\c', "none": None}
    for batched, lease_id in ((False, "L-single"), (True, "L-batch")):
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=batched)
            for i, at in enumerate(ats):
                await store.add_entry(
                    lease_id=lease_id,
                    org_id="org1",
                    case_id=None,
                    at=at,
                    kind="note",
                    ref_id=f"r{i}",
                    data=data,
                )
            await store.flush_entries()
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    timeline.c.lease_id, timeline.c.at, sql_cast(timeline.c.data, Text)
                ).order_by(timeline.c.id)
            )
        ).all()
    single = [(at, text) for lease, at, text in rows if lease == "L-single"]
    batch = [(at, text) for lease, at, text in rows if lease == "L-batch"]
    # timestamps: == between zones is never true for an ambiguous local time (PEP 495)
    assert [at.timestamp() for at, _ in batch] == [at.timestamp() for at in ats]
    assert batch == single
    assert {text for _, text in batch} == {json.dumps(data)}
