"""Hardening (issue 11): control characters, a refused store, reused event ids, outages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.db import Database
from shared.topics import COMPLAINT_EVENTS, LEASE_EVENTS
from tests.helpers import read_topic
from tests.ingest.conftest import Ingest, lease_body
from tests.pii import register_name

COMPLAINT = {
    "event_id": "k1",
    "lease_id": "L-1",
    "complaint_id": "K-1",
    "category": "disturbance",
    "occurred_at": "2026-03-01T22:00:00+01:00",
    "description": "Loud music",
}


def _fields(detail: list[dict[str, Any]]) -> list[str]:
    return [d["field"] for d in detail]


async def test_control_characters_are_refused_naming_the_field(ingest: Ingest) -> None:
    nul_name = lease_body(name="Anna\u0000Andersson")
    got = await ingest.post("/v1/leases", nul_name)
    assert got.status_code == 422, got.text
    assert _fields(got.json()["detail"]) == ["body.tenants.0.name"]
    assert "control characters" in got.json()["detail"][0]["reason"]
    assert (await ingest.post("/v1/leases", lease_body())).status_code == 202
    bell = await ingest.post("/v1/complaints", {**COMPLAINT, "description": "ring\u0007"})
    assert _fields(bell.json()["detail"]) == ["body.description"]
    batch = await ingest.http.post(
        "/v1/events/batch",
        json=[
            {"type": "complaint", **COMPLAINT, "description": "x\u0000y"},
            {"type": "complaint", **COMPLAINT, "event_id": "k2", "description": "line\nbreak"},
        ],
        headers={"X-API-Key": ingest.key},
    )
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert _fields(results[0]["errors"]) == ["description"]
    leases = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=1)
    assert len(leases) == 1  # the refused lease was never published
    complaints = await read_topic(ingest.broker.bootstrap_servers, COMPLAINT_EVENTS, count=1)
    assert len(complaints) == 1


async def _refuse_contacts_named(db: Database, name: str) -> None:
    """Make the database itself refuse one tenant's contact row (a failing store)."""
    async with db.engine.begin() as conn:
        if db.sqlite:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON tenant_contacts "
                    f"WHEN NEW.name = '{name}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON tenant_contacts "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


async def test_a_refused_store_publishes_nothing_and_logs_no_personal_data(
    ingest: Ingest, capsys: pytest.CaptureFixture[str]
) -> None:
    name = register_name("Sigrid Refused")
    await _refuse_contacts_named(ingest.database, name)
    try:
        got = await ingest.post("/v1/leases", lease_body(name=name, phone="070-765 43 21"))
        assert got.status_code == 500
        assert got.json() == {"error": "InternalError", "detail": "internal error"}
        assert await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS) == []
        logged = capsys.readouterr()
        assert "http.unexpected_error" in logged.out + logged.err
        for secret in (name, "765 43 21", "+46707654321", "811228"):
            assert secret not in logged.out + logged.err
    finally:
        async with ingest.database.engine.begin() as conn:
            await conn.execute(
                text(
                    "DROP TRIGGER IF EXISTS refuse"
                    + ("" if ingest.database.sqlite else " ON tenant_contacts")
                )
            )


async def test_an_event_id_reused_for_another_body_is_409(ingest: Ingest) -> None:
    assert (await ingest.post("/v1/leases", lease_body())).status_code == 202
    first = await ingest.post("/v1/complaints", COMPLAINT)
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    again = await ingest.post("/v1/complaints", COMPLAINT)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    other = await ingest.post("/v1/complaints", {**COMPLAINT, "description": "Something else"})
    assert other.status_code == 409, other.text
    assert other.json()["error"] == "Conflict"
    detail = other.json()["detail"][0]
    assert detail["field"] == "body.event_id" and "body hash sha256:" in detail["reason"]
    batch = await ingest.http.post(
        "/v1/events/batch",
        json=[
            {"type": "complaint", **COMPLAINT},
            {"type": "complaint", **COMPLAINT, "category": "neglect"},
        ],
        headers={"X-API-Key": ingest.key},
    )
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["duplicate", "rejected"]
    assert "different body" in results[1]["errors"][0]["reason"]
    published = await read_topic(ingest.broker.bootstrap_servers, COMPLAINT_EVENTS, count=1)
    assert len(published) == 1


async def _allow_connections(db: Database, allow: bool) -> None:
    name = make_url(str(db.url)).database
    admin = Database(str(db.url.set(database="postgres")), "public")
    try:
        async with admin.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            flag = "true" if allow else "false"
            await auto.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {flag}'))
            if not allow:
                await auto.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                )
    finally:
        await admin.dispose()


@pytest.mark.postgres
async def test_a_database_outage_is_503_with_retry_after(ingest: Ingest, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (BOKVAR_TEST_DATABASE_URL) to take a server away")
    assert (await ingest.post("/v1/leases", lease_body())).status_code == 202
    await _allow_connections(ingest.database, False)
    try:
        down = await ingest.post("/v1/complaints", COMPLAINT)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == str(ingest.settings.ingest_retry_after_seconds)
        assert down.json()["error"] == "ServiceUnavailable"
    finally:
        await _allow_connections(ingest.database, True)
    up = await ingest.post("/v1/complaints", COMPLAINT)
    assert up.status_code == 202 and up.json()["status"] == "accepted"
