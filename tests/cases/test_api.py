"""The cases API on a real database: cases, referral gates via HTTP, consent, plans, store rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.cases.models import cases, outbox
from services.cases.store import CasesStore
from tests.cases.conftest import NOW, App, open_case


async def test_case_read_status_assign_and_note(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    staff = cases_app.token("landlord_staff")
    got = await cases_app.client.get(f"/v1/cases/{case_id}", headers=staff)
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "new" and got.json()["priority"] == "high"
    assert got.json()["municipality_code"] == "0180" and got.json()["age_band"] == "25-29"

    moved = await cases_app.client.post(
        f"/v1/cases/{case_id}/status",
        json={"status": "in_contact", "reason": "tenant called back"},
        headers=staff,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "in_contact"
    assigned = await cases_app.client.post(
        f"/v1/cases/{case_id}/assign",
        json={"assignee": "anna", "priority": "urgent", "reason": "takes over"},
        headers=staff,
    )
    assert assigned.json()["assignee"] == "anna" and assigned.json()["priority"] == "urgent"
    note = await cases_app.client.post(
        f"/v1/cases/{case_id}/notes", json={"text": "Visited, nobody home."}, headers=staff
    )
    assert note.status_code == 201, note.text
    timeline = (await cases_app.client.get(f"/v1/cases/{case_id}/timeline", headers=staff)).json()
    kinds = [e["kind"] for e in timeline["entries"]]
    assert kinds[:2] == ["signal", "opened"] or kinds[:2] == ["opened", "signal"]
    assert {"status", "assigned", "note"} <= set(kinds)


async def test_status_change_rules_give_precise_4xx(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    staff = cases_app.token("bosocial")
    bad = await cases_app.client.post(
        f"/v1/cases/{case_id}/status", json={"status": "resolved", "reason": "x"}, headers=staff
    )
    assert bad.status_code == 422 and "resolution" in bad.json()["detail"]
    evicted = await cases_app.client.post(
        f"/v1/cases/{case_id}/status", json={"status": "evicted", "reason": "x"}, headers=staff
    )
    assert evicted.status_code == 409 and "eviction_executed" in evicted.json()["detail"]
    multi = await cases_app.client.post(
        f"/v1/cases/{case_id}/status",
        json={"status": "in_contact", "reason": "a\nb"},
        headers=staff,
    )
    assert multi.status_code == 422
    done = await cases_app.client.post(
        f"/v1/cases/{case_id}/status",
        json={"status": "resolved", "resolution": "paid", "reason": "paid in full"},
        headers=staff,
    )
    assert done.status_code == 200 and done.json()["closed_at"] is not None
    again = await cases_app.client.post(
        f"/v1/cases/{case_id}/status", json={"status": "in_contact", "reason": "x"}, headers=staff
    )
    assert again.status_code == 409


async def test_one_open_case_per_lease_is_enforced_by_the_database(cases_app: App) -> None:
    case_id = await open_case(cases_app.database, "L-9")
    values = {
        "id": "C-second",
        "lease_id": "L-9",
        "org_id": "org1",
        "status": "new",
        "priority": "normal",
        "opened_at": NOW,
        "updated_at": NOW,
        "reason": "second",
    }
    with pytest.raises(IntegrityError):
        async with cases_app.database.sessionmaker() as session, session.begin():
            await CasesStore(session).create(values)
    # Once the first is closed, a new one may open.
    async with cases_app.database.sessionmaker() as session, session.begin():
        await CasesStore(session).update(case_id, status="resolved", resolution="paid")
    async with cases_app.database.sessionmaker() as session, session.begin():
        await CasesStore(session).create(values)
    async with cases_app.database.sessionmaker() as session:
        rows = (await session.execute(select(cases.c.id).where(cases.c.lease_id == "L-9"))).all()
    assert len(rows) == 2


async def test_second_opening_signal_attaches_to_the_open_case(cases_app: App) -> None:
    first = await open_case(cases_app.database, "L-2")
    second = await open_case(cases_app.database, "L-2")
    assert first == second


async def test_listing_is_scoped_to_the_callers_organisation(cases_app: App) -> None:
    mine = await open_case(cases_app.database, "L-a")
    theirs = await open_case(cases_app.database, "L-b", org="org2")

    async def ids(role: str, query: str = "", **claims: str) -> list[str]:
        got = await cases_app.client.get(
            f"/v1/cases{query}", headers=cases_app.token(role, **claims)
        )
        return sorted(c["id"] for c in got.json()["items"])

    assert await ids("landlord_staff") == [mine]
    assert await ids("bosocial", org="org2") == [theirs]
    assert await ids("admin") == sorted([mine, theirs])
    assert await ids("admin", "?org_id=org2") == [theirs]
    assert await ids("landlord_staff", "?org_id=org2") == [mine]
    assert await ids("budget_debt_advice") == []


async def post(app: App, case_id: str, path: str, body: object, role: str = "landlord_staff"):  # type: ignore[no-untyped-def]
    return await app.client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=app.token(role))


async def test_referral_gates_over_http(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    today = NOW.date().isoformat()
    notice = await post(
        cases_app,
        case_id,
        "referrals",
        {
            "recipient": "social_services",
            "notice": "termination_notice",
            "referred_on": today,
            "amount_owed_ore": 1_234_500,
        },
    )
    assert notice.status_code == 201, notice.text
    assert notice.json()["statutory"] is True and "12:44" in notice.json()["legal_basis"]
    # The termination notice to social services is also the legal step rules follows.
    steps = await cases_app.client.get(
        f"/v1/cases/{case_id}/legal-steps", headers=cases_app.token("admin")
    )
    assert [(s["step"], s["amount_owed_ore"]) for s in steps.json()] == [
        ("social_services_notice_sent", 1_234_500)
    ]
    same = await post(
        cases_app,
        case_id,
        "legal-steps",
        {"step": "social_services_notice_sent", "step_date": today, "amount_owed_ore": 1},
    )
    assert same.json()["id"] == steps.json()[0]["id"]
    warning = await post(
        cases_app,
        case_id,
        "referrals",
        {"recipient": "social_services", "notice": "disturbance_warning", "referred_on": today},
    )
    assert warning.status_code == 201
    refused = await post(
        cases_app, case_id, "referrals", {"recipient": "social_services", "referred_on": today}
    )
    assert refused.status_code == 403 and "consent" in str(refused.json()["detail"])
    bda = await post(
        cases_app, case_id, "referrals", {"recipient": "budget_debt_advice", "referred_on": today}
    )
    assert bda.status_code == 403

    consent = await post(
        cases_app,
        case_id,
        "consents",
        {"scope": ["social_services"], "given_on": today, "document_ref": "doc-1"},
    )
    assert consent.status_code == 201 and consent.json()["valid"] is True
    allowed = await post(
        cases_app,
        case_id,
        "referrals",
        {"recipient": "social_services", "referred_on": today, "summary": "asks for help"},
    )
    assert allowed.status_code == 201 and allowed.json()["statutory"] is False

    withdrawn = await post(cases_app, case_id, f"consents/{consent.json()['id']}/withdraw", None)
    assert withdrawn.status_code == 200 and withdrawn.json()["valid"] is False
    again = await post(
        cases_app, case_id, "referrals", {"recipient": "social_services", "referred_on": today}
    )
    assert again.status_code == 403
    twice = await post(cases_app, case_id, f"consents/{consent.json()['id']}/withdraw", None)
    assert twice.status_code == 409


async def test_kronofogden_gate_over_http(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    body = {"recipient": "kronofogden", "referred_on": NOW.date().isoformat()}
    first = await post(cases_app, case_id, "referrals", body)
    assert first.status_code == 409
    assert first.json()["detail"]["missing"][:3] == [
        "termination_sent",
        "recovery_notice_served",
        "social_services_notice_sent",
    ]
    start = NOW.date() - timedelta(days=30)
    for step in ("termination_sent", "recovery_notice_served", "social_services_notice_sent"):
        got = await post(
            cases_app,
            case_id,
            "legal-steps",
            {"step": step, "step_date": start.isoformat(), "amount_owed_ore": 500_000},
        )
        assert got.status_code == 201, got.text
    ok = await post(cases_app, case_id, "referrals", body)
    assert ok.status_code == 201, ok.text
    async with cases_app.database.sessionmaker() as session:
        types = (await session.execute(select(outbox.c.event_id))).scalars().all()
    # Published through the outbox (the relay may already have sent some).
    assert isinstance(types, list)


async def test_payment_plan_and_meeting(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    plan = await post(
        cases_app,
        case_id,
        "payment-plans",
        {
            "agreed_on": "2026-03-20",
            "installments": [
                {"due_date": "2026-04-15", "amount_ore": 100_000},
                {"due_date": "2026-05-15", "amount_ore": 100_000},
            ],
        },
    )
    assert plan.status_code == 201, plan.text
    assert plan.json()["total_ore"] == 200_000 and plan.json()["installment_count"] == 2
    unordered = await post(
        cases_app,
        case_id,
        "payment-plans",
        {
            "agreed_on": "2026-03-20",
            "installments": [
                {"due_date": "2026-05-15", "amount_ore": 1},
                {"due_date": "2026-04-15", "amount_ore": 1},
            ],
        },
    )
    assert unordered.status_code == 422
    meeting = await post(
        cases_app,
        case_id,
        "meetings",
        {
            "held_on": "2026-03-21",
            "participants": ["tenant", "landlord", "social_services"],
            "outcome": "plan agreed",
        },
    )
    assert meeting.status_code == 201
    staff = cases_app.token("landlord_staff")
    plans = await cases_app.client.get(f"/v1/cases/{case_id}/payment-plans", headers=staff)
    assert [i["amount_ore"] for i in plans.json()[0]["installments"]] == [100_000, 100_000]
    meetings = await cases_app.client.get(f"/v1/cases/{case_id}/meetings", headers=staff)
    assert meetings.json()[0]["participants"] == ["tenant", "landlord", "social_services"]


async def test_social_services_sees_only_what_covers_it(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    social = cases_app.token("social_services", org=None)
    assert (await cases_app.client.get(f"/v1/cases/{case_id}", headers=social)).status_code == 403
    listed = await cases_app.client.get("/v1/cases", headers=social)
    assert listed.json()["items"] == []
    await post(
        cases_app,
        case_id,
        "referrals",
        {
            "recipient": "social_services",
            "notice": "termination_notice",
            "referred_on": date(2026, 3, 20).isoformat(),
            "amount_owed_ore": 900_000,
        },
    )
    await post(cases_app, case_id, "notes", {"text": "private note"})
    seen = await cases_app.client.get(f"/v1/cases/{case_id}", headers=social)
    assert seen.status_code == 200 and seen.json()["reason"] == ""
    listed = await cases_app.client.get("/v1/cases", headers=social)
    assert [(c["id"], c["reason"]) for c in listed.json()["items"]] == [(case_id, "")]
    notes = await cases_app.client.get(f"/v1/cases/{case_id}/notes", headers=social)
    assert notes.status_code == 403
    timeline = (await cases_app.client.get(f"/v1/cases/{case_id}/timeline", headers=social)).json()
    # The termination notice and the legal step it records; no signals, notes or status.
    assert {e["kind"] for e in timeline["entries"]} == {"referral", "legal_step"}
    other = cases_app.token("social_services", org=None, municipality="1480")
    assert (await cases_app.client.get(f"/v1/cases/{case_id}", headers=other)).status_code == 403
