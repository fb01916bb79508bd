"""A realistic event stream for the integration tests: five households over two months."""

from __future__ import annotations

from datetime import date, datetime, time

from shared.clock import STOCKHOLM
from shared.events import (
    CloudEvent,
    ComplaintReceived,
    EventData,
    Installment,
    LeaseRegistered,
    LegalStepRecorded,
    PaymentPlanAgreed,
    PaymentReceived,
    RentCharged,
    TenantRef,
    new_event,
)

ORG = "org1"
RENT = 800_000
MARCH_DUE = date(2026, 2, 27)
APRIL_DUE = date(2026, 3, 31)


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=STOCKHOLM)


def _lease(lease_id: str) -> LeaseRegistered:
    tenant = TenantRef(
        tenant_id=f"t-{lease_id}",
        pseudonym="p" * 16 + lease_id,
        birth_year=1990,
        age_band="30-39",
        gender="female",
    )
    return LeaseRegistered(
        lease_id=lease_id,
        org_id=ORG,
        property_id="prop-1",
        municipality_code="0180",
        monthly_rent_ore=RENT,
        start_date=date(2025, 1, 1),
        team="team-a",
        tenants=(tenant,),
    )


def _charge(lease_id: str, period: str, due: date) -> RentCharged:
    return RentCharged(
        lease_id=lease_id,
        org_id=ORG,
        invoice_id=f"inv-{lease_id}-{period}",
        period=period,
        amount_ore=RENT,
        due_date=due,
        due_date_source="jb_12_20",
    )


def _pay(lease_id: str, pid: str, amount: int, on: date) -> PaymentReceived:
    return PaymentReceived(
        lease_id=lease_id, org_id=ORG, payment_id=pid, amount_ore=amount, booked_date=on
    )


def _step(lease_id: str, step: str, on: date) -> LegalStepRecorded:
    return LegalStepRecorded(
        lease_id=lease_id,
        org_id=ORG,
        case_id=f"case-{lease_id}",
        step_id=f"{step}-{lease_id}",
        step=step,
        step_date=on,
    )


def stream() -> list[tuple[date, EventData]]:
    """Return (day it arrives, event body) in arrival order."""
    out: list[tuple[date, EventData]] = []
    feb20 = date(2026, 2, 20)
    for lease in ("L1", "L2", "L3", "L4", "L5"):
        out.append((feb20, _lease(lease)))
    for lease in ("L1", "L2", "L3", "L4"):
        out.append((feb20, _charge(lease, "2026-03", MARCH_DUE)))
    out += [
        (date(2026, 2, 26), _pay("L1", "pay-L1-1", RENT, date(2026, 2, 26))),
        (date(2026, 2, 27), _pay("L2", "pay-L2-1", 500_000, date(2026, 2, 27))),
        (date(2026, 3, 1), _complaint("L5", "c1", date(2026, 3, 1))),
        (date(2026, 3, 3), _pay("L4", "pay-L4-1", RENT, date(2026, 3, 3))),
        (date(2026, 3, 10), _step("L3", "termination_sent", date(2026, 3, 10))),
        (date(2026, 3, 12), _step("L3", "recovery_notice_served", date(2026, 3, 12))),
        (date(2026, 3, 13), _step("L3", "social_services_notice_sent", date(2026, 3, 13))),
        (date(2026, 3, 15), _plan("L2", date(2026, 3, 15))),
    ]
    for lease in ("L1", "L2", "L3", "L4"):
        out.append((date(2026, 3, 17), _charge(lease, "2026-04", APRIL_DUE)))
    out += [
        (date(2026, 3, 20), _complaint("L5", "c2", date(2026, 3, 20))),
        (date(2026, 3, 24), _pay("L2", "pay-L2-2", 150_000, date(2026, 3, 24))),
        (date(2026, 3, 30), _pay("L1", "pay-L1-2", RENT, date(2026, 3, 30))),
        (date(2026, 3, 31), _pay("L4", "pay-L4-2", RENT, date(2026, 3, 31))),
    ]
    return out


def _complaint(lease_id: str, cid: str, on: date) -> ComplaintReceived:
    return ComplaintReceived(
        lease_id=lease_id, org_id=ORG, complaint_id=cid, category="disturbance", occurred_at=_at(on)
    )


def _plan(lease_id: str, on: date) -> PaymentPlanAgreed:
    return PaymentPlanAgreed(
        lease_id=lease_id,
        org_id=ORG,
        plan_id=f"plan-{lease_id}",
        agreed_on=on,
        installments=(
            Installment(due_date=date(2026, 3, 25), amount_ore=150_000),
            Installment(due_date=date(2026, 4, 25), amount_ore=150_000),
        ),
    )


def envelopes(day: date, *, id_suffix: str = "") -> list[CloudEvent[EventData]]:
    """The stream's events arriving on `day`; ids are deterministic (`id_suffix` re-keys them)."""
    out = []
    for n, (arrives, data) in enumerate(stream()):
        if arrives == day:
            out.append(new_event(data, id=f"evt-{n}{id_suffix}", source="test", time=_at(day)))
    return out


# What the default policy must raise for this stream by 2026-04-27, once each.
EXPECTED = {
    # L2 paid 5,000 of 8,000 kr: the ladder; then a plan, kept in March, broken in April
    "L2:2026-03:late_rent_detected",
    "L2:2026-03:personal_contact_needed",
    "L2:2026-03:forfeiture_possible",
    "L2:2026-04:pre_due_reminder",
    "L2:2026-04:late_rent_detected",
    "L2:2026-04:personal_contact_needed",
    "L2:2026-04:forfeiture_possible",
    "L2:plan-L2:plan_breached",
    "L2:2026-04:high_risk",
    # L3 never pays: the ladder, then the recovery period from 2026-03-13 and enforcement;
    # its 21 days end on långfredagen 04-03, moved to Tuesday 04-07 (lag 1930:173): 3 reminders
    "L3:2026-03:late_rent_detected",
    "L3:2026-03:personal_contact_needed",
    "L3:2026-03:forfeiture_possible",
    "L3:2026-04:pre_due_reminder",
    "L3:2026-04:late_rent_detected",
    "L3:2026-04:personal_contact_needed",
    "L3:2026-04:forfeiture_possible",
    "L3:termination_sent-L3:recovery_period_started",
    "L3:termination_sent-L3:recovery_period_reminder_w1",
    "L3:termination_sent-L3:recovery_period_reminder_w2",
    "L3:termination_sent-L3:recovery_period_reminder_w3",
    "L3:termination_sent-L3:recovery_period_ending",
    "L3:termination_sent-L3:recovery_period_ended",
    "L3:termination_sent-L3:enforcement_possible",
    "L3:2026-04:high_risk",  # two months owed, over a month late
    # L4 paid the day after late rent was detected; April paid on time after a reminder
    "L4:2026-03:late_rent_detected",
    "L4:2026-03:arrears_cleared",
    "L4:2026-04:pre_due_reminder",
    # L5: two disturbance complaints within 30 days
    "L5:c2:disturbance_pattern",
}
