"""A consumer batch upserts its households in one statement; reads in the batch see them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from services.cases.store import CasesStore
from tests.conftest import MakeDatabase

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
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async with db.sessionmaker() as session, session.begin():  # a household from before
        await CasesStore(session).upsert_household(_home("L-0", "single_adult"))
    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=True)
            for i in range(50):
                await store.upsert_household(_home(f"L-{i}", "single_adult"))
            await store.upsert_household(_home("L-0", "couple_with_children"))  # latest wins
            assert (await store.household("L-0") or {})["household_type"] == "couple_with_children"
            await store.flush_entries()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
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
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.sessionmaker() as session, session.begin():
            store = CasesStore(session, batched=True)
            await store.prefetch_households(["L-0", "L-1", "L-2", "L-9"])
            assert (await store.household("L-1") or {})["household_type"] == "single_adult"
            assert await store.household("L-9") is None
            reads = sum("households" in s for s in statements)
            await store.upsert_household(_home("L-2", "couple"))
            await store.flush_entries()  # written and no longer buffered: not the prefetched row
            assert (await store.household("L-2") or {})["household_type"] == "couple"
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert reads == 1, statements
