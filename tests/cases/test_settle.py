"""Cases settle on real events from the broker: retractions, arrears paid, the SMS median."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import func, select

from services.cases.models import timeline
from shared.bus import Producer
from shared.bus.broker import EmbeddedBroker
from shared.events import (
    NotificationStatusChanged,
    SignalRaised,
    SignalRetracted,
    decode,
    new_event,
)
from shared.topics import CASE_EVENTS
from tests.cases.conftest import NOW, ORG, App, database_url, running_app, signal
from tests.conftest import MakeDatabase
from tests.helpers import read_topic, wait_for

pytestmark = pytest.mark.slow
LEASE = "L-200"


@pytest.fixture
async def app(
    make_database: MakeDatabase, test_database_url: str, tmp_path: Path, broker: EmbeddedBroker
) -> AsyncIterator[App]:
    """A cases app consuming from the test broker, on a fresh migrated database."""
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path), broker.bootstrap_servers, consume=True
    ) as running:
        yield running


def retracted(event: Any) -> Any:
    """The SignalRetracted the rules service emits for a signal raised in error."""
    sig: SignalRaised = event.data
    data = SignalRetracted(
        lease_id=sig.lease_id,
        org_id=sig.org_id,
        retraction_id=f"{sig.signal_id}:retracted",
        signal_id=sig.signal_id,
        signal=sig.signal,
        rule=sig.rule,
        policy_version=sig.policy_version,
        occurred_at=NOW + timedelta(hours=2),
        reason_code="payment_booked_before_stage",
        period="2026-03",
        due_date=date(2026, 2, 27),
        inputs={"paid_on": "2026-02-27"},
        reason_sv="Betalningen bokades före förfallodagen.",
        reason_en="The payment was booked before the due date.",
    )
    return new_event(data, id=f"ret:{sig.signal_id}", source="test", time=data.occurred_at)


def arrears(lease: str, name: str, *, owed: int = 812_300, **kw: Any) -> Any:
    """A signal with arrears (and, for arrears_cleared, what the rules service puts in inputs)."""
    event = signal(lease, name, **kw)
    update: dict[str, Any] = {"arrears_ore": owed, "period": "2026-03"}
    if name == "arrears_cleared":
        update |= {
            "arrears_ore": 0,
            "inputs": {"periods": ["2026-03"], "paid_on": "2026-03-21", "balance_ore": 0},
        }
    return new_event(
        event.data.model_copy(update=update), id=event.id, source="test", time=event.time
    )


async def the_case(app: App, lease: str = LEASE, **expect: Any) -> dict[str, Any]:
    staff = app.token("landlord_staff")

    async def found() -> dict[str, Any] | None:
        items = (await app.client.get("/v1/cases", headers=staff)).json()["items"]
        for item in items:
            if item["lease_id"] == lease and all(item[k] == v for k, v in expect.items()):
                return dict(item)
        return None

    case: dict[str, Any] = await wait_for(found, what=f"the case of {lease} with {expect}")
    return case


async def entries(app: App, case_id: str) -> list[tuple[Any, ...]]:
    got = await app.client.get(f"/v1/cases/{case_id}/timeline", headers=app.token("admin"))
    return [(e["kind"], e["name"], e["status"], e["summary"]) for e in got.json()["entries"]]


async def test_a_case_opened_by_a_retracted_signal_is_closed_as_raised_in_error(
    app: App, broker: EmbeddedBroker, producer: Producer
) -> None:
    late = arrears(LEASE, "late_rent_detected", due=date(2026, 2, 27))
    forfeiture = arrears(LEASE, "forfeiture_possible", due=date(2026, 2, 27))
    await producer.publish_many([late, forfeiture])
    opened = await the_case(app, status="new")
    await producer.publish_many([retracted(late), retracted(forfeiture)])
    case = await the_case(app, status="resolved")
    assert case["id"] == opened["id"] and case["resolution"] == "raised_in_error"
    assert case["reason"].startswith("raised in error: forfeiture_possible was retracted")
    timeline_ = await entries(app, case["id"])
    assert ("signal", "forfeiture_possible", "retracted") in [t[:3] for t in timeline_]
    assert ("signal", "late_rent_detected", "retracted") in [t[:3] for t in timeline_]
    retractions = [t for t in timeline_ if t[1] == "signal_retracted"]
    assert len(retractions) == 2
    assert "retracted: The payment was booked before the due date." in retractions[-1][3]
    assert ("status", "resolved") in [t[:2] for t in timeline_]
    records = await read_topic(broker.bootstrap_servers, CASE_EVENTS, count=2)
    changed = [decode(r.value, r.headers).data for r in records]
    assert [getattr(c, "resolution", None) for c in changed][-1] == "raised_in_error"


async def test_a_case_with_another_standing_signal_stays_open_with_the_retraction(
    app: App, broker: EmbeddedBroker, producer: Producer
) -> None:
    forfeiture = arrears(LEASE, "forfeiture_possible", due=date(2026, 2, 27))
    complaints = signal(LEASE, "complaint_pattern")
    await producer.publish_many([forfeiture, complaints, retracted(forfeiture)])
    case = await the_case(app)

    async def retraction_seen() -> list[tuple[Any, ...]] | None:
        got = await entries(app, case["id"])
        return got if any(t[1] == "signal_retracted" for t in got) else None

    timeline_ = await wait_for(retraction_seen, what="the retraction on the timeline")
    assert ("signal", "complaint_pattern", None) in [t[:3] for t in timeline_]
    assert (await the_case(app))["status"] == "new"


async def test_arrears_cleared_puts_an_arrears_case_up_for_review_with_the_payment(
    app: App, broker: EmbeddedBroker, producer: Producer
) -> None:
    await producer.publish_many(
        [
            arrears(LEASE, "forfeiture_possible", due=date(2026, 2, 27)),
            arrears(LEASE, "arrears_cleared", at=NOW + timedelta(days=1)),
            # a household in a complaints case paying its rent keeps its case as it was
            signal("L-201", "complaint_pattern"),
            arrears("L-201", "arrears_cleared", at=NOW + timedelta(days=1)),
        ]
    )
    case = await the_case(app, status="pending_review")
    assert case["reason"].startswith("arrears cleared (payment received: arrears 8 123 kr")
    timeline_ = await entries(app, case["id"])
    payment = next(t for t in timeline_ if t[1] == "arrears_cleared")
    assert payment[3] == ("payment received: arrears 8 123 kr for 2026-03 cleared on 2026-03-21")
    assert ("status", "pending_review") in [t[:2] for t in timeline_]
    other = await the_case(app, "L-201")

    async def payment_seen() -> bool:
        return any(t[1] == "arrears_cleared" for t in await entries(app, other["id"]))

    await wait_for(payment_seen, what="the payment on the complaints case")
    assert (await the_case(app, "L-201"))["status"] == "new"
    # A staff member reviews and closes it.
    closed = await app.client.post(
        f"/v1/cases/{case['id']}/status",
        json={"status": "resolved", "resolution": "paid", "reason": "paid in full, checked"},
        headers=app.token("landlord_staff"),
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "resolved"


async def test_rent_unpaid_again_takes_a_case_out_of_review(
    app: App, broker: EmbeddedBroker, producer: Producer
) -> None:
    await producer.publish_many(
        [
            arrears(LEASE, "forfeiture_possible", due=date(2026, 2, 27)),
            arrears(LEASE, "arrears_cleared", at=NOW + timedelta(days=1)),
        ]
    )
    await the_case(app, status="pending_review")
    april = signal(LEASE, "late_rent_detected", stage="2026-04-late", due=date(2026, 3, 31))
    await producer.publish(april)
    case = await the_case(app, status="new")
    assert case["reason"].startswith("new signal late_rent_detected after the payment")


def _sms(lease: str, *, template: str, channel: Literal["sms", "log"], days: int) -> Any:
    data = NotificationStatusChanged(
        lease_id=lease,
        org_id=ORG,
        notification_id=f"{lease}:{template}",
        signal_id=f"{lease}:2026-03:late_rent_detected" if template == "late_rent" else None,
        signal="late_rent_detected" if template == "late_rent" else None,
        channel=channel,
        status="sent",
        template=template,
        at=NOW + timedelta(days=days),
    )
    return new_event(data, id=f"sms:{lease}:{template}", source="test", time=data.at)


async def test_sms_median_counts_log_channel_sends_to_tenants(
    app: App, broker: EmbeddedBroker, producer: Producer
) -> None:
    events = [
        # L-A: due 16 March, tenant SMS (log channel) on 20 March -> 4 days
        signal("L-A", "late_rent_detected", due=date(2026, 3, 16)),
        _sms("L-A", template="late_rent", channel="log", days=0),
        # L-B: due 13 March, tenant SMS (log channel) on 20 March -> 7 days
        signal("L-B", "late_rent_detected", due=date(2026, 3, 13)),
        _sms("L-B", template="late_rent", channel="log", days=0),
        # L-C: only a staff alert went out: not an SMS to the tenant
        signal("L-C", "late_rent_detected", due=date(2026, 3, 19)),
        _sms("L-C", template="staff_alert", channel="log", days=0),
        # L-D: flagged in error and retracted: not a household that was late
        (wrong := signal("L-D", "late_rent_detected", due=date(2026, 3, 18))),
        retracted(wrong),
    ]
    await producer.publish_many(events)

    async def all_recorded() -> bool:
        async with app.database.sessionmaker() as session:
            count = await session.scalar(select(func.count()).select_from(timeline))
        return count == len(events)

    await wait_for(all_recorded, what="every event on a timeline")
    url = f"/v1/orgs/{ORG}/report?start=2026-03-01&end=2026-03-31"
    report = (await app.client.get(url, headers=app.token("landlord_staff"))).json()
    assert report["households_flagged_late"] == 3
    assert report["median_days_due_to_first_sms"] == 5.5  # median of 4 and 7
