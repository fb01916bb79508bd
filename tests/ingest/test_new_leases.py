"""A lease the batch registers is inserted, not upserted, and has no contacts to delete."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ingest import examples
from ingest.batch import parse_batch
from ingest.models import leases, tenant_contacts
from ingest.pipeline import process
from ingest.processing import ContactRow, Context, Known, LeaseRow, Writes
from ingest.store import IngestStore
from shared.db.errors import is_unique_violation
from tests.conftest import MakeDatabase

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CTX = Context(org_id="org1", now=NOW, secret=b"k")
LEASE = {"type": "lease", **examples.LEASE}


def test_a_registered_lease_is_marked_new_and_an_update_is_not() -> None:
    again = {**LEASE, "event_id": "again"}
    items = parse_batch(orjson.dumps([LEASE, again]), "application/json", max_events=10)
    out = process(items, CTX, Known())
    assert out.statuses == ["accepted", "accepted"]
    assert out.writes.new_leases == {LEASE["lease_id"]}  # updated in the batch: still new
    stored = Known(leases={LEASE["lease_id"]: LeaseRow("org1", None)})
    assert process(items, CTX, stored).writes.new_leases == set()


def contact(lease_id: str, name: str) -> ContactRow:
    return ContactRow("T1", "p" * 16, name, None, "sv")


async def test_a_new_lease_stored_meanwhile_fails_the_write(make_database: MakeDatabase) -> None:
    db = await make_database("ingest")
    first = Writes(
        leases={"L1": (LeaseRow("org1", None), False)},
        contacts={"L1": [contact("L1", "A")]},
        new_leases={"L1"},
    )
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", first, NOW)
    # another request's batch looked L1 up before it was stored: its plain insert fails
    # (Ingestor.ingest then processes the batch again, with L1 known)
    with pytest.raises(IntegrityError) as raised:
        async with db.sessionmaker() as session, session.begin():
            await IngestStore(session).apply("org1", first, NOW)
    assert is_unique_violation(raised.value)
    # known, it is upserted and its contacts replaced
    again = Writes(
        leases={"L1": (LeaseRow("org1", 5), True)}, contacts={"L1": [contact("L1", "B")]}
    )
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", again, NOW)
    async with db.sessionmaker() as session:
        row = (await session.execute(select(leases.c.due_day, leases.c.ended))).one()
        names = (await session.execute(select(tenant_contacts.c.name))).scalars().all()
    assert tuple(row) == (5, True)
    assert names == ["B"]
