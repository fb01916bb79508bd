"""An ERP connects and sends three months of history in shuffled order: no false alarm.

Through running service processes: households that paid on time (on the due date, the
day before it, or with their payments in a later request than their charges) get no
signal and no SMS at all; households that paid late or never get the stages still open today.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from shared.calendar import rent_due_date
from shared.events import NotificationStatusChanged, SignalRaised, SignalRetracted
from shared.topics import NOTIFICATION_EVENTS, RISK_SIGNALS
from tests.e2e.conftest import api_key
from tests.e2e.pipeline import Pipeline
from tests.e2e.test_pipeline import RENT, charge, lease, local, post
from tests.e2e.watch import Watcher
from tests.notifier.twilio_server import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PERIODS = ("2026-03", "2026-04", "2026-05")  # due 02-27, 03-31, 04-30
ON_TIME = {"B-ON-1": 0, "B-ON-2": 1, "B-ON-3": 3, "B-ON-4": 0}  # days paid before the due date
LATE = ("B-LATE-1", "B-LATE-2")  # pay 8 days after the due date (May's not yet)
NEVER = ("B-NEVER-1",)
TODAY = date(2026, 5, 6)  # a Wednesday: May's working day 3 (Första maj is a Friday)


def _phone(n: int) -> str:
    return f"+4670555{n:04d}"


def _due(period: str) -> date:
    year, month = period.split("-")
    return rent_due_date(int(year), int(month))


def _payment(lease_id: str, period: str, on: date) -> dict[str, Any]:
    return {
        "type": "payment",
        "event_id": f"pay-{lease_id}-{period}",
        "payment_id": f"PAY-{lease_id}-{period}",
        "amount_ore": RENT,
        "booked_date": on.isoformat(),
        "reference": lease_id,
    }


def _history(rng: random.Random) -> list[dict[str, Any]]:
    """Every charge and payment booked by today, shuffled (leases go first, as they must)."""
    items: list[dict[str, Any]] = []
    for lease_id in (*ON_TIME, *LATE, *NEVER):
        items += [{"type": "charge", **charge(lease_id, p)} for p in PERIODS]
    for lease_id, early in ON_TIME.items():
        items += [_payment(lease_id, p, _due(p) - timedelta(days=early)) for p in PERIODS]
    for lease_id in LATE:
        paid = [(p, _due(p) + timedelta(days=8)) for p in PERIODS]
        items += [_payment(lease_id, p, on) for p, on in paid if on <= TODAY]
    rng.shuffle(items)
    return items


def _of(leases: tuple[str, ...] | dict[str, int], model: type) -> Callable[[Any], bool]:
    return lambda d: isinstance(d, model) and d.lease_id in leases


async def test_backfilled_history_in_shuffled_order_flags_only_late_and_never_payers(
    start_pipeline: Callable[..., Any], twilio: FakeTwilio
) -> None:
    p: Pipeline = await start_pipeline(local(2026, 5, 6, 12, 0), speed=1.0)
    key = await api_key(p, "bostader")
    leases = [*ON_TIME, *LATE, *NEVER]
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=30
        ) as ingest,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, NOTIFICATION_EVENTS]) as w,
    ):
        registrations = [
            {"type": "lease", **lease(lid, phone=_phone(n))} for n, lid in enumerate(leases)
        ]
        await post(ingest, "/v1/events/batch", registrations)
        history = _history(random.Random(10))
        for k in range(0, len(history), 7):  # small requests: a lease's events in several
            result = (await post(ingest, "/v1/events/batch", history[k : k + 7])).json()
            assert result["rejected"] == 0, result
        # the watermark follows the history at once: its copy in each partition comes
        # after that partition's payments, so it cannot overtake one still queued
        await post(
            ingest,
            "/v1/ledger/watermark",
            {"event_id": "wm-2026-05-05", "booked_through": "2026-05-05"},
        )

        expected = {
            f"{lid}:{period}:{stage}"
            for lid in NEVER
            for period in PERIODS[:2]
            for stage in ("late_rent_detected", "personal_contact_needed", "forfeiture_possible")
        } | {
            f"{lid}:2026-05:{stage}"
            for lid in (*LATE, *NEVER)
            for stage in ("late_rent_detected", "personal_contact_needed")
        }
        ladder = ("late_rent_detected", "personal_contact_needed", "forfeiture_possible")
        flagged = await w.wait(
            lambda d: isinstance(d, SignalRaised) and d.signal_id in expected,
            count=len(expected),
            what="the late and never payers' open stages",
        )
        await w.wait(
            lambda d: (
                isinstance(d, NotificationStatusChanged)
                and d.lease_id in LATE
                and d.signal == "late_rent_detected"
                and d.status == "sent"
            ),
            what="a late payer's late-rent SMS",
        )
        assert await p.drained()
        await w.poll(timeout_ms=1000)

        raised = w.matching(_of((*LATE, *NEVER), SignalRaised))
        assert {s.signal_id for s in raised if s.signal in ladder} == expected
        assert all(s.occurred_at.date() <= TODAY for s in flagged)
        # the households that paid on time: no signal, no SMS, nothing to retract
        assert w.matching(_of(ON_TIME, SignalRaised)) == []
        # leases from 2024 are existing stock: not even a welcome SMS (issue 10 item 5)
        assert w.matching(_of(ON_TIME, NotificationStatusChanged)) == []
        assert w.matching(lambda d: isinstance(d, SignalRetracted)) == []
        on_time_phones = {_phone(n) for n, lid in enumerate(leases) if lid in ON_TIME}
        assert [m for m in twilio.messages if m["to"] in on_time_phones] == []
