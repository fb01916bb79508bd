"""IngestStore's batch writes and reads (unnest on PostgreSQL, json_each on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ingest.models import invoices, leases, seen_events, tenant_contacts
from ingest.processing import ContactRow, LeaseRow, Writes
from ingest.store import IngestStore
from tests.conftest import MakeDatabase

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def writes(hash_e1: str = "h1") -> Writes:
    return Writes(
        leases={"L-1": (LeaseRow("org1", 5), False), "L-2": (LeaseRow("org1", None), True)},
        contacts={
            "L-1": [
                ContactRow("T1", "p1", 'Åsa "Ö" Berg', None, "sv"),
                ContactRow("T2", "p2", None, "+46701234567", "en"),
            ]
        },
        invoices={"4242": ("L-1", "I-1")},
        seen={"e1": hash_e1, "e2": "h2"},
    )


async def test_apply_stores_every_column_and_load_known_reads_it(
    make_database: MakeDatabase,
) -> None:
    db = await make_database("ingest")
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", writes(), NOW)
    later = NOW + timedelta(hours=1)
    again = writes(hash_e1="h1b")
    again.contacts["L-1"] = again.contacts["L-1"][:1]
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", again, later)  # upserts, contacts replaced
    async with db.sessionmaker() as session:
        store = IngestStore(session)
        known = await store.load_known(
            "org1",
            lease_ids={"L-1", "L-2", "L-9"},
            ocrs={"4242", "999"},
            complaint_ids=set(),
            event_ids={"e1", "e2", "e3"},
            seen_since=NOW - timedelta(days=1),
        )
        lease_rows = (await session.execute(select(leases).order_by(leases.c.lease_id))).all()
        contact_rows = (await session.execute(select(tenant_contacts))).all()
        seen_rows = (await session.execute(select(seen_events).order_by("event_id"))).all()
        invoice_rows = (await session.execute(select(invoices))).all()
    assert known.leases == {"L-1": LeaseRow("org1", 5), "L-2": LeaseRow("org1", None)}
    assert known.ocr == {"4242": ("L-1", "I-1")}
    assert known.seen == {"e1": "h1b", "e2": "h2"}
    assert [(r.lease_id, r.org_id, r.due_day, r.ended, r.updated_at) for r in lease_rows] == [
        ("L-1", "org1", 5, False, later),
        ("L-2", "org1", None, True, later),
    ]
    assert [
        (r.lease_id, r.tenant_id, r.pseudonym, r.name, r.phone, r.language, r.opted_out)
        for r in contact_rows
    ] == [("L-1", "T1", "p1", 'Åsa "Ö" Berg', None, "sv", False)]
    assert [(r.org_id, r.event_id, r.seen_at, r.body_hash) for r in seen_rows] == [
        ("org1", "e1", later, "h1b"),
        ("org1", "e2", later, "h2"),
    ]
    assert [tuple(r) for r in invoice_rows] == [("org1", "4242", "L-1", "I-1")]
    async with db.sessionmaker() as session:
        other = await IngestStore(session).load_known(
            "org2",
            lease_ids=set(),
            ocrs={"4242"},
            complaint_ids=set(),
            event_ids={"e1"},
            seen_since=NOW - timedelta(days=1),
        )
    assert other.ocr == {} and other.seen == {}
