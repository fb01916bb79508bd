"""IngestStore's batch writes and reads (unnest on PostgreSQL, json_each on SQLite)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Text, bindparam, inspect, select, text
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.exc import IntegrityError

from ingest.models import invoices, leases, metadata, seen_events, tenant_contacts
from ingest.processing import ContactRow, LeaseRow, Writes
from ingest.store import IngestStore, _known_queries
from shared.db.bulk import array_literal
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


async def test_expired_ids_are_overwritten_and_new_ids_inserted(
    make_database: MakeDatabase,
) -> None:
    """`load_known` returns an id stored before the dedup window in `expired` (not in
    `seen`); `apply` overwrites those rows and inserts the other ids, so an id stored
    meanwhile fails the write instead of being overwritten."""
    db = await make_database("ingest")
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", Writes(seen={"old": "h0", "kept": "hk"}), NOW)
    later = NOW + timedelta(days=31)
    async with db.sessionmaker() as session:
        known = await IngestStore(session).load_known(
            "org1",
            lease_ids=set(),
            ocrs=set(),
            complaint_ids=set(),
            event_ids={"old", "new"},
            seen_since=later - timedelta(days=30),
        )
    assert known.seen == {} and known.expired == {"old"}
    seen = {"old": "h1", "new": "h2"}
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", Writes(seen=seen), later, expired=known.expired)
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(seen_events).order_by("event_id"))).all()
    assert [(r.event_id, r.seen_at, r.body_hash) for r in rows] == [
        ("kept", NOW, "hk"),
        ("new", later, "h2"),
        ("old", later, "h1"),
    ]
    with pytest.raises(IntegrityError):
        async with db.sessionmaker() as session, session.begin():
            await IngestStore(session).apply(
                "org1", Writes(seen={"new": "h3"}), later, expired=set()
            )


# ids an array literal reads specially unless quoted, and ids JSON escapes (PostgreSQL
# takes lists of plain values as one array literal written by orjson, and a list holding
# an escape element by element): every one must be stored and found as it is
ARRAY_SYNTAX = ["a,b", "{x}", "NULL", "null", "", " sp ", "Åsa", "x}y{", "'"]
ESCAPED = ['q"uote', "back\\slash", 'both\\"', "tab\there", "nl\n", "\u0001"]


@pytest.mark.parametrize("ids", [ARRAY_SYNTAX, ARRAY_SYNTAX + ESCAPED], ids=["plain", "escaped"])
async def test_ids_with_array_syntax_are_stored_and_found_as_they_are(
    make_database: MakeDatabase, ids: list[str]
) -> None:
    db = await make_database("ingest")
    done = Writes(
        leases={f"L{i}": (LeaseRow(f"org{i}", None), False) for i in ids},
        invoices={f"9{n}": (f"L{i}", f"I{i}") for n, i in enumerate(ids)},
        seen={i: f"h{i}" for i in ids},
    )
    async with db.sessionmaker() as session, session.begin():
        await IngestStore(session).apply("org1", done, NOW)
    async with db.sessionmaker() as session:
        known = await IngestStore(session).load_known(
            "org1",
            lease_ids={f"L{i}" for i in ids} | {"L"},
            ocrs={f"9{n}" for n in range(len(ids))} | {"8"},
            complaint_ids=set(),
            event_ids=set(ids) | {"nope"},
            seen_since=NOW - timedelta(days=1),
        )
    assert known.leases == {f"L{i}": LeaseRow(f"org{i}", None) for i in ids}
    assert known.ocr == done.invoices
    assert known.seen == done.seen


@pytest.mark.postgres
async def test_load_known_looks_each_id_up_in_the_index_on_postgresql(
    make_database: MakeDatabase, backend: str
) -> None:
    """With a batch a quarter of the table, `event_id = ANY(ids)` was planned as a
    sequential scan (growing with the table); the per-id lookup stays an index scan."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL's plan (BOKVAR_TEST_DATABASE_URL)")
    db = await make_database("ingest")
    async with db.sessionmaker() as session, session.begin():
        seen = {f"e{i}": f"h{i}" for i in range(20_000)}
        await IngestStore(session).apply("org1", Writes(seen=seen), NOW)
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE seen_events"))
    # the seen-ids query as sent, its placeholders named for text()
    sql = str(_known_queries(True)[3].compile(dialect=psycopg2.dialect()))
    sql = re.sub(r"%\((\w+)\)s", lambda m: f":{m[1]}", sql)
    explain = text("EXPLAIN " + sql).bindparams(bindparam("ids", type_=Text()))
    params = {"org_id": "org1", "since": NOW - timedelta(days=1)}
    async with db.sessionmaker() as session:
        ids = [f"e{i}" for i in range(0, 20_000, 4)]
        bound = {**params, "ids": array_literal(ids)}  # as load_known binds them
        plan = "\n".join(row[0] for row in await session.execute(explain, bound))
        assert "Nested Loop" in plan and "Index Scan using pk_seen_events" in plan, plan
        assert "Seq Scan on seen_events" not in plan, plan
        known = await IngestStore(session).load_known(
            "org1",
            lease_ids=set(),
            ocrs=set(),
            complaint_ids=set(),
            event_ids={"e1", "e19999", "e20000"},
            seen_since=NOW - timedelta(days=1),
        )
    assert known.seen == {"e1": "h1", "e19999": "h19999"}


async def test_the_migrations_build_the_models_without_unused_indexes(
    make_database: MakeDatabase,
) -> None:
    """Leases and contacts are read by lease id only: no secondary index to write per lease
    (ix_leases_org_id and ix_tenant_contacts_pseudonym were dropped); the migrated schema
    is the models' (alembic finds nothing to generate)."""
    db = await make_database("ingest")

    def check(conn: Connection) -> None:
        found = inspect(conn)
        assert found.get_indexes("leases") == []
        assert found.get_indexes("tenant_contacts") == []
        assert [ix["name"] for ix in found.get_indexes("seen_events")] == ["ix_seen_events_seen_at"]
        migration = MigrationContext.configure(conn, opts={"compare_type": False})
        drift = [
            d
            for d in compare_metadata(migration, metadata)
            if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))
        ]
        assert drift == []

    async with db.engine.connect() as conn:
        await conn.run_sync(check)
