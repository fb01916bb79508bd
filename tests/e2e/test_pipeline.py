"""End to end through running service processes, on the real broker and database.

Each test starts ingest, rules, notifier and cases as separate processes (as `bokvar up`
does) with one simulated clock (BOKVAR_CLOCK_START/EPOCH/SPEED), so the scenarios do not
depend on the hour CI runs, and talks to them over HTTP only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.cases.config import CasesSettings
from shared.auth import encode_token
from shared.calendar import add_working_days
from shared.clock import STOCKHOLM
from shared.events import (
    CaseOpened,
    NotificationStatusChanged,
    SignalRaised,
    TaskChanged,
)
from shared.topics import CASE_EVENTS, NOTIFICATION_EVENTS, RISK_SIGNALS
from tests.e2e.conftest import api_key
from tests.e2e.pipeline import Pipeline
from tests.e2e.watch import Watcher
from tests.notifier.twilio_server import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ORG = "bostader"
PHONE = "+46701234567"
RENT = 812_500
DEV_JWT_SECRET = CasesSettings.model_fields["cases_jwt_secret"].default.get_secret_value()
# "every payment booked through 2026-03-09 has been sent": late stages wait for this
WATERMARK = {"event_id": "wm-2026-03-09", "booked_through": "2026-03-09"}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=STOCKHOLM)  # type: ignore[misc]


def lease(lease_id: str, *, phone: str = PHONE, municipality: str = "0180") -> dict[str, Any]:
    return {
        "event_id": f"lease-{lease_id}",
        "lease_id": lease_id,
        "property_id": "P1",
        "area": "Centrum",
        "municipality_code": municipality,
        "monthly_rent_ore": RENT,
        "start_date": "2024-01-01",
        "end_date": None,
        "team": "team-a",
        "household_type": "single_adult",
        "due_day": None,
        "tenants": [
            {
                "tenant_id": f"T-{lease_id}",
                "personnummer": "19811218-9876",
                "phone": phone,
                "language": "sv",
                "name": "Test Testsson",
            }
        ],
    }


def charge(lease_id: str, period: str) -> dict[str, Any]:
    return {
        "event_id": f"charge-{lease_id}-{period}",
        "lease_id": lease_id,
        "invoice_id": f"INV-{lease_id}-{period}",
        "ocr": None,
        "period": period,
        "amount_ore": RENT,
    }


async def post(client: httpx.AsyncClient, path: str, body: Any, **kw: Any) -> httpx.Response:
    response = await client.post(path, json=body, **kw)
    assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
    return response


def sim_now(p: Pipeline) -> datetime:
    return p.clock_start + timedelta(seconds=(time.time() - p.epoch) * p.clock_speed)


def staff_token(p: Pipeline, role: str = "landlord_staff", **claims: Any) -> dict[str, str]:
    body = {"sub": "e2e-user", "role": role, "org": ORG, "municipality": "0180", **claims}
    token = encode_token(
        body, DEV_JWT_SECRET, now=sim_now(p) - timedelta(days=1), ttl=timedelta(days=3650)
    )
    return {"Authorization": f"Bearer {token}", "X-Audit-Reason": "e2e"}


def for_lease(lease_id: str, model: type, **fields: Any) -> Callable[[Any], bool]:
    return lambda d: (
        isinstance(d, model)
        and d.lease_id == lease_id
        and all(getattr(d, k) == v for k, v in fields.items())
    )


async def test_unpaid_rent_to_sms_to_call_task_then_payment_stops_everything(
    start_pipeline: Callable[..., Any], twilio: FakeTwilio
) -> None:
    # March rent is due Friday 27 February 2026. The clock starts Sunday morning and runs
    # 10,800 times real time (a simulated day every 8 s), so the charge is in before
    # Monday, working day 1 after the due date.
    p: Pipeline = await start_pipeline(local(2026, 3, 1, 6, 0), speed=10_800)
    key = await api_key(p, ORG)
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=30
        ) as ingest,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, NOTIFICATION_EVENTS]) as w,
    ):
        await post(ingest, "/v1/leases", lease("L-1"))
        # Sunday, or Monday on a slow start (a real second is three simulated hours)
        arrival = [sim_now(p).astimezone(STOCKHOLM).date()]
        await post(ingest, "/v1/ledger/charges", charge("L-1", "2026-03"))
        arrival.append(sim_now(p).astimezone(STOCKHOLM).date())

        late = await w.wait(
            for_lease("L-1", SignalRaised, signal="late_rent_detected"), what="late_rent_detected"
        )
        assert late[0].due_date.isoformat() == "2026-02-27"
        sent = await w.wait(
            for_lease("L-1", NotificationStatusChanged, signal="late_rent_detected", status="sent"),
            what="late-rent SMS sent",
        )
        sent_local = sent[0].at.astimezone(STOCKHOLM)
        # Working day 1 after the due date is Monday 2 March: the stage's date. This ERP
        # sends no ledger watermark, so the alarm waits one banking day (the settlement
        # lag) after the later of Sunday and the day the charge arrived, for payments
        # booked by then to come in: Tuesday 3 March after quiet hours (08:00), when the
        # charge came in on Sunday.
        assert late[0].occurred_at.astimezone(STOCKHOLM).date().isoformat() == "2026-03-02"
        released = {
            add_working_days(max(date(2026, 3, 1), day), 1) + timedelta(days=1) for day in arrival
        }
        assert sent_local.date() in released and sent_local.hour >= 8, (arrival, sent_local)
        assert any(m["to"] == PHONE for m in twilio.messages)

        task = (
            await w.wait(
                for_lease("L-1", TaskChanged, kind="phone_call", status="created"),
                what="phone-call task",
            )
        )[0]
        texts_before_payment = len([m for m in twilio.messages if m["to"] == PHONE])

        await post(
            ingest,
            "/v1/ledger/payments",
            {
                "event_id": "pay-L-1",
                "lease_id": "L-1",
                "payment_id": "PAY-1",
                "amount_ore": RENT,
                "booked_date": sim_now(p).astimezone(STOCKHOLM).date().isoformat(),
                "reference": "L-1",
            },
        )
        await w.wait(
            for_lease("L-1", SignalRaised, signal="arrears_cleared"), what="arrears_cleared"
        )
        await w.wait(
            lambda d: (
                isinstance(d, TaskChanged)
                and d.task_id == task.task_id
                and d.status in ("cancelled", "completed")
            ),
            what="call task closed",
        )

        # Let the simulated clock pass the forfeiture date (27 Feb + 8 days) and more.
        deadline = local(2026, 3, 7, 12, 0)
        while sim_now(p) < deadline:
            await w.poll(timeout_ms=500)
        later = w.matching(for_lease("L-1", SignalRaised))
        assert {s.signal for s in later} <= {
            "late_rent_detected",
            "personal_contact_needed",
            "arrears_cleared",
            "pre_due_reminder",
        }
        assert len([m for m in twilio.messages if m["to"] == PHONE]) == texts_before_payment


async def test_forfeiture_opens_a_case_and_consent_allows_debt_advice_referral(
    start_pipeline: Callable[..., Any],
) -> None:
    # Two weeks after the due date: every arrears stage up to forfeiture has passed.
    p: Pipeline = await start_pipeline(local(2026, 3, 10, 10, 0))
    key = await api_key(p, ORG)
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=30
        ) as ingest,
        httpx.AsyncClient(base_url=p.url("cases"), timeout=30) as cases,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, CASE_EVENTS]) as w,
    ):
        await post(ingest, "/v1/leases", lease("L-2"))
        await post(ingest, "/v1/ledger/charges", charge("L-2", "2026-03"))
        await post(ingest, "/v1/ledger/watermark", WATERMARK)  # the ERP's payments are all in
        await w.wait(
            for_lease("L-2", SignalRaised, signal="forfeiture_possible"), what="forfeiture_possible"
        )
        case_id = (await w.wait(for_lease("L-2", CaseOpened), what="case opened"))[0].case_id
        headers = staff_token(p)
        path = f"/v1/cases/{case_id}"
        today = sim_now(p).astimezone(STOCKHOLM).date().isoformat()
        referral = {
            "recipient": "budget_debt_advice",
            "referred_on": today,
            "summary": "Hyresskuld en månad; erbjud budget- och skuldrådgivning.",
        }
        refused = await cases.post(f"{path}/referrals", json=referral, headers=headers)
        assert refused.status_code == 403, refused.text
        await post(
            cases,
            f"{path}/consents",
            {
                "scope": ["budget_debt_advice", "social_services"],
                "given_on": today,
                "document_ref": "samtycke-2026-0042",
            },
            headers=headers,
        )
        made = await post(cases, f"{path}/referrals", referral, headers=headers)
        assert made.json()["recipient"] == "budget_debt_advice"
        listed = await cases.get(f"{path}/referrals", headers=headers)
        assert [r["recipient"] for r in listed.json()] == ["budget_debt_advice"]


async def test_termination_recovery_period_and_the_kronofogden_gate(
    start_pipeline: Callable[..., Any],
) -> None:
    p: Pipeline = await start_pipeline(local(2026, 4, 20, 10, 0))
    key = await api_key(p, ORG)
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=30
        ) as ingest,
        httpx.AsyncClient(base_url=p.url("cases"), timeout=30) as cases,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, CASE_EVENTS]) as w,
    ):
        await post(ingest, "/v1/leases", lease("L-3"))
        await post(ingest, "/v1/ledger/charges", charge("L-3", "2026-03"))
        await post(ingest, "/v1/ledger/watermark", WATERMARK)
        case_id = (await w.wait(for_lease("L-3", CaseOpened), what="case opened"))[0].case_id
        headers = staff_token(p)
        path = f"/v1/cases/{case_id}"
        kfm = {
            "recipient": "kronofogden",
            "referred_on": "2026-04-20",
            "summary": "Ansökan om avhysning.",
        }

        await post(
            cases,
            f"{path}/legal-steps",
            {"step": "termination_sent", "step_date": "2026-03-12", "amount_owed_ore": RENT},
            headers=headers,
        )
        gate = await cases.post(f"{path}/referrals", json=kfm, headers=headers)
        assert gate.status_code == 409, gate.text
        assert "recovery_notice_served" in gate.text and "social_services_notice_sent" in gate.text

        await post(
            cases,
            f"{path}/legal-steps",
            {"step": "recovery_notice_served", "step_date": "2026-03-13"},
            headers=headers,
        )
        # The notice to social services (JB 12:44) states the amount owed; statutory, no consent.
        await post(
            cases,
            f"{path}/referrals",
            {
                "recipient": "social_services",
                "notice": "termination_notice",
                "referred_on": "2026-03-16",
                "amount_owed_ore": RENT,
                "summary": "Underrättelse om uppsägning.",
            },
            headers=headers,
        )
        await post(
            cases,
            f"{path}/legal-steps",
            {
                "step": "social_services_notice_sent",
                "step_date": "2026-03-16",
                "amount_owed_ore": RENT,
            },
            headers=headers,
        )
        # The recovery period runs three weeks from the later notice (16 March) to 6 April.
        started = await w.wait(
            for_lease("L-3", SignalRaised, signal="recovery_period_started"),
            what="recovery_period_started",
        )
        assert started[0].inputs, "signal carries its inputs"
        await w.wait(
            for_lease("L-3", SignalRaised, signal="enforcement_possible"),
            what="enforcement_possible",
        )
        allowed = await post(cases, f"{path}/referrals", kfm, headers=headers)
        assert allowed.json()["recipient"] == "kronofogden"


async def test_two_disturbance_complaints_make_a_pattern_and_a_case(
    start_pipeline: Callable[..., Any],
) -> None:
    p: Pipeline = await start_pipeline(local(2026, 5, 12, 10, 0))
    key = await api_key(p, ORG)
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=30
        ) as ingest,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, CASE_EVENTS]) as w,
    ):
        await post(ingest, "/v1/leases", lease("L-4"))
        for k, day in enumerate((2, 9)):
            occurred = local(2026, 5, day, 23, 15).astimezone(UTC).isoformat()
            await post(
                ingest,
                "/v1/complaints",
                {
                    "event_id": f"cmp-L-4-{k}",
                    "lease_id": "L-4",
                    "complaint_id": f"C-{k}",
                    "category": "disturbance",
                    "occurred_at": occurred,
                    "description": "Hög musik sent på kvällen.",
                },
            )
        pattern = await w.wait(
            for_lease("L-4", SignalRaised, signal="complaint_pattern"), what="complaint_pattern"
        )
        assert "2" in pattern[0].reason_en or pattern[0].inputs
        await w.wait(for_lease("L-4", CaseOpened), what="case opened for the pattern")
