"""The timeline assembled from real events on the real broker, through the app's consumer."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shared.bus import Producer
from shared.bus.broker import EmbeddedBroker
from shared.events import (
    LeaseRegistered,
    NotificationStatusChanged,
    TaskChanged,
    TenantRef,
    decode,
    encode,
    new_event,
)
from shared.topics import CASE_EVENTS, RISK_SIGNALS
from tests.cases.conftest import NOW, ORG, App, database_url, running_app, signal
from tests.conftest import MakeDatabase
from tests.helpers import header, read_topic, wait_for

LEASE = "L-100"


def lease_event() -> Any:
    data = LeaseRegistered(
        lease_id=LEASE,
        org_id=ORG,
        property_id="P-1",
        municipality_code="0180",
        monthly_rent_ore=900_000,
        start_date=date(2024, 1, 1),
        team="team-a",
        household_type="single_with_children",
        tenants=(
            TenantRef(
                tenant_id="T-1",
                pseudonym="p" * 32,
                birth_year=1995,
                age_band="30-39",
                gender="female",
            ),
        ),
    )
    return new_event(data, id=f"lease:{LEASE}:1", source="test", time=NOW)


def sms(status: str, minutes: int) -> Any:
    data = NotificationStatusChanged(
        lease_id=LEASE,
        org_id=ORG,
        notification_id="N-1",
        signal_id=f"{LEASE}:2026-03:late_rent_detected",
        signal="late_rent_detected",
        status=status,  # type: ignore[arg-type]
        template="late_rent_sv",
        at=NOW + timedelta(minutes=minutes),
    )
    return new_event(data, id=f"sms:N-1:{status}", source="test", time=data.at)


def task(status: str, minutes: int, outcome: str | None = None) -> Any:
    data = TaskChanged(
        lease_id=LEASE,
        org_id=ORG,
        task_id="T-9",
        kind="phone_call",
        status=status,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        at=NOW + timedelta(days=9, minutes=minutes),
    )
    return new_event(data, id=f"task:T-9:{status}", source="test", time=data.at)


async def test_timeline_is_assembled_from_real_events(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    broker: EmbeddedBroker,
    producer: Producer,
) -> None:
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path), broker.bootstrap_servers, consume=True
    ) as app:
        await producer.publish_many(
            [
                lease_event(),
                signal(LEASE, "late_rent_detected", due=date(2026, 2, 27)),
                sms("sent", 5),
                sms("delivered", 6),
            ]
        )
        later = NOW + timedelta(days=9)
        await producer.publish(signal(LEASE, "forfeiture_possible", at=later, score=40))
        await producer.publish_many([task("created", 1), task("completed", 30, "reached")])
        # A redelivered event is absorbed by the inbox.
        await producer.publish(sms("delivered", 6))
        case = await _await_case(app)
        staff = app.token("landlord_staff")

        async def full_timeline() -> list[dict[str, Any]] | None:
            got = await app.client.get(f"/v1/cases/{case['id']}/timeline", headers=staff)
            entries: list[dict[str, Any]] = got.json()["entries"]
            return entries if len(entries) >= 7 else None

        entries = await wait_for(full_timeline, what="seven timeline entries")
        described = [(e["kind"], e["name"], e["status"], e["outcome"]) for e in entries]
        assert ("signal", "late_rent_detected", None, None) in described
        assert ("sms", "late_rent_sv", "sent", None) in described
        assert ("sms", "late_rent_sv", "delivered", None) in described
        assert ("signal", "forfeiture_possible", None, None) in described
        assert ("task", "phone_call", "completed", "reached") in described
        assert sum(1 for d in described if d[0] == "sms") == 2
        assert case["household_type"] == "single_with_children"
        assert case["age_band"] == "30-39" and case["gender"] == "female"

        records = await read_topic(broker.bootstrap_servers, CASE_EVENTS, count=1)
        opened = decode(records[0].value, records[0].headers)
        assert opened.type == "se.bokvar.case.opened.v1"
        assert opened.data.lease_id == LEASE


async def _await_case(app: App) -> dict[str, Any]:
    staff = app.token("landlord_staff")

    async def one_case() -> dict[str, Any] | None:
        items = (await app.client.get("/v1/cases", headers=staff)).json()["items"]
        return items[0] if items else None

    case: dict[str, Any] = await wait_for(one_case, what="a case opened by forfeiture_possible")
    return case


async def test_case_events_reach_the_topic_for_rules(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    broker: EmbeddedBroker,
    producer: Producer,
) -> None:
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path), broker.bootstrap_servers, consume=True
    ) as app:
        await producer.publish(signal(LEASE, "high_risk", score=90))
        case = await _await_case(app)
        assert case["priority"] == "urgent"
        staff = app.token("landlord_staff")
        step = await app.client.post(
            f"/v1/cases/{case['id']}/legal-steps",
            json={"step": "termination_sent", "step_date": "2026-03-20", "amount_owed_ore": 5},
            headers=staff,
        )
        assert step.status_code == 201
        plan = await app.client.post(
            f"/v1/cases/{case['id']}/payment-plans",
            json={
                "agreed_on": "2026-03-20",
                "installments": [{"due_date": "2026-04-01", "amount_ore": 50_000}],
            },
            headers=staff,
        )
        assert plan.status_code == 201
        moved = await app.client.post(
            f"/v1/cases/{case['id']}/status",
            json={"status": "payment_plan", "reason": "plan agreed"},
            headers=staff,
        )
        assert moved.status_code == 200
        notice = await app.client.post(
            f"/v1/cases/{case['id']}/referrals",
            json={
                "recipient": "social_services",
                "notice": "disturbance_warning",
                "referred_on": "2026-03-20",
            },
            headers=staff,
        )
        assert notice.status_code == 201
        records = await read_topic(broker.bootstrap_servers, CASE_EVENTS, count=5)
        events = [decode(r.value, r.headers) for r in records]
        types = sorted(e.type for e in events)
        assert types == [
            "se.bokvar.case.legal_step_recorded.v1",
            "se.bokvar.case.opened.v1",
            "se.bokvar.case.payment_plan_agreed.v1",
            "se.bokvar.case.referral_recorded.v1",
            "se.bokvar.case.status_changed.v1",
        ]
        plan_event = next(e for e in events if e.type.endswith("payment_plan_agreed.v1"))
        assert plan_event.data.installments[0].amount_ore == 50_000  # type: ignore[attr-defined]
        assert all(r.key == LEASE.encode() for r in records)


async def test_a_bad_record_goes_to_the_dlq_and_the_consumer_moves_on(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    broker: EmbeddedBroker,
    producer: Producer,
) -> None:
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path), broker.bootstrap_servers, consume=True
    ) as app:
        good = signal(LEASE, "complaint_pattern")
        _, value, headers = encode(good)
        broken = value.replace(b'"complaint_pattern"', b'"no_such_signal"')
        await producer.send_raw([(RISK_SIGNALS, LEASE.encode(), broken, headers)])
        await producer.publish(good)
        case = await _await_case(app)
        assert case["lease_id"] == LEASE and case["priority"] == "normal"
        dead = await read_topic(broker.bootstrap_servers, f"{RISK_SIGNALS}.dlq", count=1)
        reason = header(dead[0], "dlq_reason") or ""
        assert "signal" in reason and header(dead[0], "dlq_consumer_group") == "cases"
