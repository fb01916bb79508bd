"""A consumer batch writes its lease upserts in one statement; reads in the batch see them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, delete, func, select
from sqlalchemy import cast as sql_cast

from notifier import models
from notifier.consumer import make_handler
from notifier.models import notifications, outbox, tasks, team_cursors
from notifier.store import NotifierStore
from notifier.workflow import Context, on_lease, on_signal
from shared.bus import Batch, Received
from shared.clock import ManualClock
from shared.db import Database
from shared.events import SignalRaised, new_event
from tests.helpers import recorded_statements
from tests.notifier.conftest import add_lease, add_staff, in_tx, make_lease, make_signal


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
    with recorded_statements(db) as statements:
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
    on_leases = [s for s in statements if "leases" in s.split("(")[0]]
    assert len(on_leases) == 2, on_leases  # the prefetch and one upsert of all 50
    assert sum("notifications" in s for s in statements) == 1  # the any-tenant prefetch
    stored = await in_tx(db, clock, lambda s: s.get_lease("L-49"))
    assert stored is not None and stored.tenant_ids == ["T"]


async def test_a_batch_that_meets_a_stored_lease_upserts_it_and_keeps_its_new_rows(
    db: Database, clock: ManualClock
) -> None:
    """PostgreSQL tries the batch's leases as a plain insert first (in a savepoint): a
    lease already stored fails it, and the batch's leases are upserted instead, the
    batch's new SMS (inserted before the savepoint) kept."""
    now = clock.now()
    async with db.sessionmaker.begin() as session:
        await NotifierStore(session, clock=clock).upsert_lease(
            lease_id="L-old", org_id="org1", team="team-a", tenant_ids=["T0"], now=now
        )
    async with db.sessionmaker.begin() as session:
        store = NotifierStore(session, clock=clock, buffer_events=True)
        await store.prefetch_absent(["n-1"], [])
        row = await store.create_notification(
            {
                "id": "n-1",
                "lease_id": "L-new",
                "org_id": "org1",
                "recipient_kind": "tenant",
                "recipient_id": "T1",
                "template": "welcome",
                "variables": {},
                "status": "queued",
                "version": 1,
                "due_at": now,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        assert row is not None
        for lease_id, team in (("L-new", "team-n"), ("L-old", "team-b")):
            await store.upsert_lease(
                lease_id=lease_id, org_id="org1", team=team, tenant_ids=["T1"], now=now
            )
        await store.flush_events()
    old = await in_tx(db, clock, lambda s: s.get_lease("L-old"))
    new = await in_tx(db, clock, lambda s: s.get_lease("L-new"))
    assert old is not None and old.team == "team-b" and old.tenant_ids == ["T1"]
    assert new is not None and new.team == "team-n"
    assert await in_tx(db, clock, lambda s: s.get_notification("n-1")) is not None


async def _signal_batch(
    db: Database, clock: ManualClock, ctx: Context, *, buffered: bool, data: list[Any] | None = None
) -> Any:
    """Signals for known leases (one and two tenants), for a lease not known yet (an SMS to
    any tenant, replaced per tenant by the lease event after it), a call task with a staff
    alert (or `data`); applied by the consumer's handler or event by event; the rows and
    events."""
    now = clock.now()
    data = data or [
        make_signal("L-1"),
        make_signal("L-2"),
        make_signal("L-1", "personal_contact_needed"),
        make_signal("L-9"),
        make_lease(tenant_ids=("T7", "T8")).model_copy(update={"lease_id": "L-9"}),
        make_signal("L-3"),  # deferred with the rows the lease event's expansion made
        make_signal("L-3", "personal_contact_needed"),
        make_signal("L-2", "late_rent_detected"),  # the same signal id again
    ]
    events = [new_event(d, id=f"e{n}", source="test", time=now) for n, d in enumerate(data)]
    async with db.sessionmaker.begin() as session:
        if buffered:
            received = [Received(ev, ev.topic, 0, n) for n, ev in enumerate(events)]
            batch = Batch(session, received, outbox, clock)
            await make_handler(ctx, clock)(batch)
        else:
            store = NotifierStore(session, clock=clock)
            for ev in events:
                if isinstance(ev.data, SignalRaised):
                    await on_signal(store, ctx, ev.data, now)
                else:
                    await on_lease(store, ctx, ev.data, now, event_time=ev.time)
    async with db.sessionmaker() as session:
        found = []
        for table in (notifications, tasks, team_cursors):
            found.append(
                [
                    tuple(r)
                    for r in await session.execute(
                        select(table).order_by(table.c[table.primary_key.columns.keys()[0]])
                    )
                ]
            )
        cols = (outbox.c.event_id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
        found.append([tuple(r) for r in await session.execute(select(*cols).order_by(outbox.c.id))])
    return found


async def test_a_batch_of_signals_inserts_its_sms_and_tasks_together_with_the_same_result(
    db: Database, clock: ManualClock, ctx: Context
) -> None:
    for lease, tenants in (("L-1", ["T1"]), ("L-2", ["T1", "T2"]), ("L-3", ["T3"])):
        await in_tx(
            db,
            clock,
            lambda s, lease=lease, tenants=tenants: s.upsert_lease(
                lease_id=lease, org_id="org1", team="team-a", tenant_ids=tenants, now=clock.now()
            ),
        )
    await add_staff(db, clock, "s1")
    await add_staff(db, clock, "s2")
    with recorded_statements(db) as statements:
        buffered = await _signal_batch(db, clock, ctx, buffered=True)
    async with db.sessionmaker.begin() as session:
        for table in (notifications, tasks, team_cursors, outbox, models.leases):
            if table is models.leases:
                await session.execute(delete(table).where(table.c.lease_id == "L-9"))
            else:
                await session.execute(delete(table))
    one_by_one = await _signal_batch(db, clock, ctx, buffered=False)
    assert buffered == one_by_one
    sms, task_rows = buffered[0], buffered[1]
    assert len(task_rows) == 2 and len(sms) >= 7  # 4 tenant SMS, "*" + T7, T8, 2 alerts
    inserts = [
        s for s in statements if s.startswith(("INSERT INTO notifications", "INSERT INTO tasks"))
    ]
    # a statement midway (the repeated signal id, the lease event's new SMS) writes the
    # rows deferred so far first; without them it is one insert per table
    plain = [s for s in inserts if "ON CONFLICT" not in s]
    assert plain and len(inserts) < len(sms) + len(task_rows), inserts


async def _apply_signals(db: Database, clock: ManualClock, ctx: Context, data: list[Any]) -> None:
    now = clock.now()
    events = [new_event(d, id=f"e-{d.signal_id}", source="test", time=now) for d in data]
    async with db.sessionmaker.begin() as session:
        received = [Received(ev, ev.topic, 0, n) for n, ev in enumerate(events)]
        await make_handler(ctx, clock)(Batch(session, received, outbox, clock))


async def test_a_batch_of_call_tasks_goes_round_robin_in_a_statement_per_table(
    db: Database, clock: ManualClock, ctx: Context
) -> None:
    """At work hours each alarm's call task is assigned round-robin and its assignee
    alerted: the batch's tasks, alerts and the team's cursor are written together (a
    statement each, however many alarms), and the next batch goes on where it ended."""
    for staff_id in ("s1", "s2", "s3"):
        await add_staff(db, clock, staff_id)
    first = [f"L-{i}" for i in range(7)]
    for lease_id in [*first, "L-7", "L-8"]:
        await add_lease(db, clock, lease_id)
    with recorded_statements(db) as statements:
        await _apply_signals(
            db, clock, ctx, [make_signal(lease, "personal_contact_needed") for lease in first]
        )
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE"))]
    for table in ("tasks", "notifications", "team_cursors"):
        assert sum(s.startswith(f"INSERT INTO {table} ") for s in writes) == 1, (table, writes)
    await _apply_signals(
        db, clock, ctx, [make_signal(lease, "personal_contact_needed") for lease in ("L-7", "L-8")]
    )

    async with db.sessionmaker() as session:
        assigned = dict(
            (await session.execute(select(tasks.c.lease_id, tasks.c.assignee_id))).all()
        )
        alerts = (
            await session.execute(
                select(notifications.c.task_id, notifications.c.recipient_id).where(
                    notifications.c.recipient_kind == "staff"
                )
            )
        ).all()
        cursor = (await session.execute(select(team_cursors.c.last_assignee_id))).scalar_one()
        task_ids = (await session.execute(select(tasks.c.id, tasks.c.assignee_id))).all()
    turns = ["s1", "s2", "s3", "s1", "s2", "s3", "s1", "s2", "s3"]
    assert [assigned[f"L-{i}"] for i in range(9)] == turns  # the second batch goes on
    assert cursor == "s3"
    assert sorted(alerts) == sorted(task_ids)  # each assignee alerted about its task, once


async def test_a_run_of_arrears_cleared_cancels_together_with_the_same_result(
    db: Database, clock: ManualClock, ctx: Context
) -> None:
    """A day's payments from late payers: the batch's run of arrears_cleared signals
    cancels for all its leases in one statement per table, with the rows and events that
    applying them one by one gives; what the batch queues after a clear stays pending,
    what it queued before is cancelled."""
    queued = [
        make_signal("L-1"),
        make_signal("L-1", "personal_contact_needed"),
        make_signal("L-2"),
        make_signal("L-3"),
        make_signal("L-3", "personal_contact_needed"),
    ]
    april = "L-1:2026-04:late_rent_detected"
    run = [
        make_signal("L-1", "arrears_cleared"),
        make_signal("L-1", "arrears_cleared", signal_id="L-1:2026-02:arrears_cleared"),
        make_signal("L-3", "arrears_cleared"),
        make_signal("L-2", "personal_contact_needed"),  # queued, then cleared in this batch
        make_signal("L-2", "arrears_cleared"),
        make_signal("L-1", signal_id=april),  # after L-1's clear: stays pending
    ]

    async def applied(buffered: bool) -> Any:
        async with db.sessionmaker.begin() as session:
            for table in (notifications, tasks, team_cursors, outbox, models.leases):
                await session.execute(delete(table))
        for lease in ("L-1", "L-2", "L-3"):
            await add_lease(db, clock, lease)
        await _apply_signals(db, clock, ctx, queued)
        async with db.sessionmaker.begin() as session:
            await session.execute(delete(outbox))  # the run's events only
        return await _signal_batch(db, clock, ctx, buffered=buffered, data=run)

    await add_staff(db, clock, "s1")
    await add_staff(db, clock, "s2")
    with recorded_statements(db) as statements:
        together = await applied(buffered=True)
    updates = [s for s in statements if s.startswith("UPDATE tasks")]
    assert len(updates) == 2, updates  # two runs of clears: [L-1, L-3] and [L-2]
    assert together == await applied(buffered=False)

    async with db.sessionmaker() as session:
        sms = dict(
            (
                await session.execute(
                    select(notifications.c.signal_id, notifications.c.status).where(
                        notifications.c.recipient_kind == "tenant"
                    )
                )
            ).all()
        )
        task_status = set((await session.execute(select(tasks.c.status))).scalars())
        alerts = set(
            (
                await session.execute(
                    select(notifications.c.status).where(notifications.c.recipient_kind == "staff")
                )
            ).scalars()
        )
        cleared = (
            await session.execute(
                select(func.count()).where(models.leases.c.cleared_at.is_not(None))
            )
        ).scalar_one()
    assert sms.pop(april) == "queued"
    assert set(sms.values()) == {"cancelled"} and len(sms) == 3
    assert task_status == {"cancelled"} and alerts == {"cancelled"}
    assert cleared == 3


async def test_signals_already_applied_create_nothing_again(
    db: Database, clock: ManualClock, ctx: Context
) -> None:
    await add_lease(db, clock, "L-1")
    first = await _signal_batch(db, clock, ctx, buffered=True)
    async with db.sessionmaker.begin() as session:
        await session.execute(delete(outbox))
    again = await _signal_batch(db, clock, ctx, buffered=True)  # the same signal ids
    assert again[:3] == first[:3] and again[3] == []


async def test_batched_lease_upserts_store_awkward_values_as_given(
    db: Database, clock: ManualClock
) -> None:
    # the lease ids, orgs, teams and tenant ids go as one array literal text per column,
    # written by orjson unless it escapes a character the array syntax reads differently
    # (a control character), then element by element: the same rows either way
    awkward = ["a,b", "{x}", "null", "NULL", " sp ", "", "Malmö ÅÄÖ", "x;y", "semi'quote"]
    quoted = [*awkward, 'dq"uote', "back\\slash", '\\"both\\\\']
    for values in (awkward, quoted, [*quoted, "new\nline", "tab\tx", "bell\x07", "\\n"]):
        leases = {f"L-{i}-{len(values)},{v}": v for i, v in enumerate(values)}
        async with db.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=clock, buffer_events=True)
            for lease_id, value in leases.items():
                await store.upsert_lease(
                    lease_id=lease_id,
                    org_id=value,
                    team=value or None,
                    tenant_ids=[value, "T"],
                    now=clock.now(),
                )
            await store.flush_events()
        for lease_id, value in leases.items():
            row = await in_tx(db, clock, lambda s, lease_id=lease_id: s.get_lease(lease_id))
            assert row is not None
            assert (row.lease_id, row.org_id, row.team) == (lease_id, value, value or None)
            assert (row.tenant_ids, row.ended) == ([value, "T"], False)


async def test_deferred_sms_and_tasks_store_awkward_values_as_given(
    db: Database, clock: ManualClock
) -> None:
    # a batch's new notifications and tasks go as one JSON record set (PostgreSQL) unless
    # a value is not of its column's plain type: the rows and their JSON text as given
    now = clock.now()
    odd = 'q"uote \\ back, {x} null Malmö\nline\x07'
    base = {"lease_id": "L-1", "org_id": "org1", "created_at": now, "updated_at": now}
    sms = {
        **base,
        "id": f"n-{odd}",
        "recipient_kind": "tenant",
        "recipient_id": odd,
        "template": "late_rent",
        "variables": {"amount": odd, "n": 3, "nested": [None, True]},
        "status": "queued",
        "version": 1,
        "due_at": now,
        "attempts": 0,
        "detail": odd,
    }
    task = {**base, "id": f"t-{odd}", "kind": "phone_call", "status": "created", "version": 1}
    task |= {"note": odd, "due_at": now, "promised_date": now.date()}
    async with db.sessionmaker.begin() as session:
        store = NotifierStore(session, clock=clock, buffer_events=True)
        await store.prefetch_absent([sms["id"], "n-2"], [task["id"]])
        assert await store.create_notification(sms) is not None
        assert await store.create_notification({**sms, "id": "n-2", "variables": {}}) is not None
        assert await store.create_task(task) is not None
        await store.flush_events()
    async with db.sessionmaker() as session:
        stored = {r.id: r for r in await session.execute(select(notifications))}
        stored_task = (await session.execute(select(tasks))).one()
    assert stored[sms["id"]].recipient_id == odd and stored[sms["id"]].detail == odd
    assert stored[sms["id"]].variables == sms["variables"] and stored["n-2"].variables == {}
    assert stored[sms["id"]].due_at == now and stored[sms["id"]].attempts == 0
    assert (stored_task.note, stored_task.due_at, stored_task.promised_date) == (
        odd,
        now,
        now.date(),
    )
    async with db.sessionmaker() as session:  # the JSON text the column's serializer writes
        raw = await session.execute(
            select(sql_cast(notifications.c.variables, Text)).where(notifications.c.id == sms["id"])
        )
        assert raw.scalar_one() == json.dumps(sms["variables"])
