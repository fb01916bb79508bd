"""Audit chain on a real database: every access recorded, tampering detected, retention purge."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select, update

from services.cases.anchoring import ANCHOR_EVENT, log_anchor
from services.cases.audit import GENESIS, Anchor, AuditRow, digest, row_hash, verify_chain
from services.cases.models import audit_head, audit_log, cases, consents, meetings, timeline
from services.cases.store import AuditStore
from shared.bus.broker import EmbeddedBroker
from tests.cases.conftest import NOW, App, database_url, open_case, running_app
from tests.conftest import MakeDatabase
from tests.helpers import wait_for

BOKVAR = str(Path(sys.executable).with_name("bokvar"))


async def audit_rows(app: App) -> list[tuple[str, str, str | None, str | None, str]]:
    async with app.database.sessionmaker() as session:
        result = await session.execute(
            select(
                audit_log.c.action,
                audit_log.c.role,
                audit_log.c.case_id,
                audit_log.c.reason,
                audit_log.c.outcome,
            ).order_by(audit_log.c.id)
        )
        return [tuple(r) for r in result]  # type: ignore[misc]


async def test_every_read_and_write_is_audited_with_who_and_why(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    staff = {**cases_app.token("bosocial", sub="kim"), "X-Audit-Reason": "arrears follow-up"}
    await cases_app.client.get(f"/v1/cases/{case_id}", headers=staff)
    await cases_app.client.post(f"/v1/cases/{case_id}/notes", json={"text": "n"}, headers=staff)
    await cases_app.client.get(f"/v1/cases/{case_id}/timeline", headers=staff)
    social = cases_app.token("social_services", org=None)
    await cases_app.client.get(f"/v1/cases/{case_id}/notes", headers=social)
    rows = await audit_rows(cases_app)
    assert rows == [
        ("case.read", "bosocial", case_id, "arrears follow-up", "allowed"),
        ("note.create", "bosocial", case_id, "arrears follow-up", "allowed"),
        ("timeline.read", "bosocial", case_id, "arrears follow-up", "allowed"),
        ("note.read", "social_services", case_id, "test", "denied"),
    ]
    async with cases_app.database.sessionmaker() as session:
        assert await AuditStore(session).verify() == (4, None)
        who = (await session.execute(select(audit_log.c.actor, audit_log.c.at))).first()
    assert who is not None and who.actor == "kim" and who.at == cases_app.clock.now()


async def _verify_cli(app: App, db_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "BOKVAR_DATABASE_URL": db_url}
    proc = await asyncio.create_subprocess_exec(
        BOKVAR, "audit", "verify", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_verify_fails_at_the_first_tampered_row(
    cases_app: App, test_database_url: str, tmp_path: Path
) -> None:
    case_id = await open_case(cases_app.database)
    staff = cases_app.token("landlord_staff")
    for _ in range(4):
        assert (
            await cases_app.client.get(f"/v1/cases/{case_id}", headers=staff)
        ).status_code == 200
    db_url = database_url(test_database_url, tmp_path)
    code, out = await _verify_cli(cases_app, db_url)
    assert code == 0 and "OK (4 rows)" in out

    async with cases_app.database.sessionmaker() as session, session.begin():
        await session.execute(update(audit_log).where(audit_log.c.id == 3).values(role="admin"))
    code, out = await _verify_cli(cases_app, db_url)
    assert code == 1 and "row id 3" in out
    got = await cases_app.client.get("/v1/audit/verify", headers=cases_app.token("admin"))
    assert got.json()["ok"] is False and got.json()["first_broken_id"] == 3


async def test_deleting_a_row_breaks_the_chain(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    for _ in range(3):
        await cases_app.client.get(f"/v1/cases/{case_id}", headers=cases_app.token("admin"))
    async with cases_app.database.sessionmaker() as session, session.begin():
        await session.execute(audit_log.delete().where(audit_log.c.id == 2))
    async with cases_app.database.sessionmaker() as session:
        assert await AuditStore(session).verify() == (2, 3)


async def _read_five_times(app: App) -> None:
    case_id = await open_case(app.database)
    for _ in range(5):
        got = await app.client.get(f"/v1/cases/{case_id}", headers=app.token("admin"))
        assert got.status_code == 200


async def test_deleting_the_newest_rows_is_detected_against_the_head(
    cases_app: App, test_database_url: str, tmp_path: Path
) -> None:
    await _read_five_times(cases_app)
    async with cases_app.database.sessionmaker() as session, session.begin():
        await session.execute(audit_log.delete().where(audit_log.c.id >= 4))
    async with cases_app.database.sessionmaker() as session:
        assert await AuditStore(session).verify() == (3, 4)
    code, out = await _verify_cli(cases_app, database_url(test_database_url, tmp_path))
    assert code == 1 and "row id 4" in out and "head records row 5" in out


async def test_truncation_with_the_head_rewritten_is_caught_by_an_anchor(
    cases_app: App, test_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _read_five_times(cases_app)
    anchor = await log_anchor(cases_app.app.state.rt)
    assert anchor is not None and anchor.last_id == 5 and anchor.rows == 5
    logged = [line for line in capsys.readouterr().out.splitlines() if ANCHOR_EVENT in line]
    assert logged and f"last_hash={anchor.last_hash}" in logged[-1]
    db_url = database_url(test_database_url, tmp_path)
    as_arg = f"{anchor.last_id}:{anchor.last_hash}:{anchor.rows}"
    code, out = await _verify_cli(cases_app, db_url)
    assert code == 0 and as_arg in out  # what to record elsewhere
    async with cases_app.database.sessionmaker() as session, session.begin():
        row3 = (await session.execute(select(audit_log).where(audit_log.c.id == 3))).one()
        await session.execute(audit_log.delete().where(audit_log.c.id >= 4))
        await session.execute(update(audit_head).values(last_id=3, last_hash=row3.hash))
    code, out = await _verify_cli(cases_app, db_url)
    assert code == 0  # the database alone cannot tell
    code, out = await _verify_cli(cases_app, db_url, "--anchor", as_arg)
    assert code == 1 and "row id 4" in out and "anchor records row 5" in out
    log_file = tmp_path / "cases.log"
    line = {"event": ANCHOR_EVENT, "last_id": 5, "last_hash": anchor.last_hash, "rows": 5}
    log_file.write_bytes(b'{"event": "other"}\n' + orjson.dumps(line) + b"\n")
    code, out = await _verify_cli(cases_app, db_url, "--anchors", str(log_file))
    assert code == 1 and "anchor records row 5" in out


async def test_a_missing_head_is_reported(cases_app: App) -> None:
    await _read_five_times(cases_app)
    async with cases_app.database.sessionmaker() as session, session.begin():
        await session.execute(audit_head.delete())
    got = await cases_app.client.get("/v1/audit/verify", headers=cases_app.token("admin"))
    # the request's own audit row restored the head first (logged as suspicious)
    assert got.json()["ok"] is True
    async with cases_app.database.sessionmaker() as session, session.begin():
        await session.execute(audit_head.delete())
    async with cases_app.database.sessionmaker() as session:
        verdict = await AuditStore(session).check()
    assert verdict.first_broken == 7 and verdict.problem == "the head row is missing"


def test_anchors_check_the_hash_and_count_at_their_row() -> None:
    rows = _chain(4)
    good = Anchor(2, rows[1].hash, 2)
    assert verify_chain(rows, anchors=[good]).first_broken is None
    assert verify_chain(rows, anchors=[Anchor(2, "f" * 64, 2)]).first_broken == 2
    assert verify_chain(rows[:3], anchors=[Anchor(4, rows[3].hash, 4)]).first_broken == 4
    head = Anchor(4, rows[3].hash, 4)
    assert verify_chain(rows[:3], head=head).first_broken == 4
    assert verify_chain(rows, head=head).first_broken is None


def _chain(n: int) -> list[AuditRow]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        row = AuditRow(
            id=i,
            at=NOW,
            actor="u",
            role="admin",
            org_id=None,
            action="case.read",
            outcome="allowed",
            case_id=None,
            reason=None,
            reason_sha256=digest(None),
            prev_hash=prev,
        )
        row = replace(row, hash=row_hash(prev, row))
        rows.append(row)
        prev = row.hash
    return rows


async def test_retention_purges_personal_data_and_keeps_statistics(cases_app: App) -> None:
    closed_id = await open_case(cases_app.database, "L-old")
    open_id = await open_case(cases_app.database, "L-open")
    staff = {**cases_app.token("landlord_staff"), "X-Audit-Reason": "Anna Svensson called"}
    base = f"/v1/cases/{closed_id}"
    await cases_app.client.post(f"{base}/notes", json={"text": "Talked to Anna"}, headers=staff)
    await cases_app.client.post(
        f"{base}/meetings",
        json={"held_on": "2026-03-20", "participants": ["tenant"], "outcome": "Anna agreed"},
        headers=staff,
    )
    await cases_app.client.post(
        f"{base}/consents",
        json={"scope": ["social_services"], "given_on": "2026-03-20", "document_ref": "scan-7"},
        headers=staff,
    )
    await cases_app.client.post(
        f"{base}/payment-plans",
        json={
            "agreed_on": "2026-03-20",
            "installments": [{"due_date": "2026-04-01", "amount_ore": 10}],
        },
        headers=staff,
    )
    await cases_app.client.post(
        f"{base}/status",
        json={"status": "resolved", "resolution": "paid", "reason": "paid in full"},
        headers=staff,
    )
    await cases_app.client.post(f"/v1/cases/{open_id}/notes", json={"text": "keep"}, headers=staff)
    cases_app.clock.advance(timedelta(days=729))
    early = await cases_app.client.post(
        "/v1/admin/retention/purge", headers=cases_app.token("admin")
    )
    assert early.json()["purged_cases"] == []
    cases_app.clock.advance(timedelta(days=1))
    admin = cases_app.token("admin")
    due = await cases_app.client.post("/v1/admin/retention/purge", headers=admin)
    assert due.json()["purged_cases"] == [closed_id]

    async with cases_app.database.sessionmaker() as session:
        notes = (
            await session.execute(
                select(timeline.c.case_id, timeline.c.text).where(timeline.c.kind == "note")
            )
        ).all()
        meeting = (await session.execute(select(meetings))).one()
        consent = (await session.execute(select(consents))).one()
        case = (await session.execute(select(cases).where(cases.c.id == closed_id))).one()
        reasons = (
            await session.execute(
                select(audit_log.c.reason).where(
                    audit_log.c.case_id == closed_id, audit_log.c.action != "retention.purge"
                )
            )
        ).scalars()
        purge_rows = (
            await session.execute(
                select(func.count()).where(audit_log.c.action == "retention.purge")
            )
        ).scalar()
        assert await AuditStore(session).verify() == (await _count(cases_app), None)
    assert notes == [(open_id, "keep")]
    assert meeting.outcome is None and meeting.participants is None
    assert consent.document_ref is None
    assert case.purged_at is not None and case.status == "resolved"
    assert case.resolution == "paid" and case.age_band == "25-29"
    assert set(reasons) == {None}
    assert purge_rows == 1
    plans = await cases_app.client.get(f"{base}/payment-plans", headers=admin)
    assert plans.json()[0]["installments"] == [] and plans.json()[0]["total_ore"] is None
    # A second run finds nothing more to purge.
    again = await cases_app.client.post("/v1/admin/retention/purge", headers=admin)
    assert again.json()["purged_cases"] == []


async def _count(app: App) -> int:
    async with app.database.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(audit_log))).scalar())


async def test_the_retention_loop_purges_on_its_schedule(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    module_broker: EmbeddedBroker,
) -> None:
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path),
        module_broker.bootstrap_servers,
        cases_retention_days=1,
        cases_retention_interval_seconds=0.05,
    ) as app:
        case_id = await open_case(app.database, "L-loop")
        closed = await app.client.post(
            f"/v1/cases/{case_id}/status",
            json={"status": "resolved", "resolution": "moved_voluntarily", "reason": "moved"},
            headers=app.token("admin"),
        )
        assert closed.status_code == 200
        app.clock.advance(timedelta(days=1))

        async def purged() -> bool:
            async with app.database.sessionmaker() as session:
                row = (
                    await session.execute(select(cases.c.purged_at).where(cases.c.id == case_id))
                ).one()
            return row.purged_at is not None

        await wait_for(purged, what="the scheduled purge")
