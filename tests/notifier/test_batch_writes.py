"""A consumer batch writes its lease upserts in one statement; reads in the batch see them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from notifier.store import NotifierStore
from shared.clock import ManualClock
from shared.db import Database
from tests.notifier.conftest import in_tx


async def test_buffered_lease_upserts_are_seen_in_the_batch_and_stored_at_its_end(
    db: Database, clock: ManualClock
) -> None:
    now = clock.now()
    async with db.sessionmaker.begin() as session:
        store = NotifierStore(session, clock=clock, buffer_events=True)
        await store.prefetch_leases(["L-1", "L-2"])  # both unknown before the batch
        await store.prefetch_any_tenant(["L-1", "L-2"])
        await store.upsert_lease(
            lease_id="L-1", org_id="org1", team="team-a", tenant_ids=["T1"], now=now
        )
        await store.upsert_lease(
            lease_id="L-1", org_id="org1", team="team-b", tenant_ids=["T1", "T2"], now=now
        )
        seen = await store.get_lease("L-1")
        assert seen is not None and seen.team == "team-b" and seen.tenant_ids == ["T1", "T2"]
        await store.upsert_lease(
            lease_id="L-2", org_id="org1", team="team-a", tenant_ids=["T3"], now=now
        )
        await store.end_lease("L-2", now=now)  # the upsert before it is written first
        assert await store.pending_for_any_tenant("L-1") == []
        await store.flush_events()

    one = await in_tx(db, clock, lambda s: s.get_lease("L-1"))
    two = await in_tx(db, clock, lambda s: s.get_lease("L-2"))
    assert one is not None and (one.team, one.tenant_ids, one.ended) == (
        "team-b",
        ["T1", "T2"],
        False,
    )
    assert two is not None and two.ended is True


async def test_a_batch_of_lease_events_costs_one_lease_statement(
    db: Database, clock: ManualClock
) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=clock, buffer_events=True)
            ids = [f"L-{i}" for i in range(50)]
            await store.prefetch_leases(ids)
            await store.prefetch_any_tenant(ids)
            for lease_id in ids:
                await store.upsert_lease(
                    lease_id=lease_id, org_id="org1", team="t", tenant_ids=["T"], now=clock.now()
                )
                assert await store.pending_for_any_tenant(lease_id) == []
            await store.flush_events()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    on_leases = [s for s in statements if "leases" in s.split("(")[0]]
    assert len(on_leases) == 2, on_leases  # the prefetch and one upsert of all 50
    assert sum("notifications" in s for s in statements) == 1  # the any-tenant prefetch
    stored = await in_tx(db, clock, lambda s: s.get_lease("L-49"))
    assert stored is not None and stored.tenant_ids == ["T"]
