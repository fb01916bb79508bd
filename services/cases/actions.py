"""Case operations shared by the consumer and the API: engine decision -> store -> events.

Every function works inside the caller's transaction and stages its events in the
outbox through `emit`; the caller commits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from services.cases import engine
from services.cases.store import CasesStore
from shared.clock import local_date
from shared.events import (
    CaseOpened,
    CaseStatusChanged,
    CloudEvent,
    EventData,
    Installment,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    LegalStepRecorded,
    NotificationStatusChanged,
    PaymentPlanAgreed,
    ReferralRecorded,
    SignalRaised,
    TaskChanged,
    new_event,
)

SOURCE = "bokvar/cases"
Emit = Callable[[CloudEvent[EventData]], Awaitable[None]]
Row = dict[str, Any]


def new_id(prefix: str) -> str:
    """Return a fresh id for an entity recorded through the API."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def case_id_for(event_id: str) -> str:
    """Return the deterministic id of the case a signal event opens."""
    return "C-" + hashlib.sha256(event_id.encode()).hexdigest()[:20]


def _event(data: EventData, event_id: str, now: datetime) -> CloudEvent[EventData]:
    return new_event(data, id=event_id, source=SOURCE, time=now)


async def on_signal(
    store: CasesStore, event_id: str, signal: SignalRaised, *, now: datetime, emit: Emit
) -> None:
    """Record a signal; open a case if it calls for one and none is open for the lease."""
    case = await store.open_case(signal.lease_id)
    wanted = engine.signal_priority(signal.signal, signal.risk.score)
    if case is None and engine.opens_case(signal.signal):
        case = await _open_case(store, event_id, signal, priority=wanted, now=now, emit=emit)
    elif case is not None:
        raised = engine.raise_priority(case["priority"], wanted)
        if raised != case["priority"]:
            await store.update(case["id"], priority=raised, updated_at=now)
            case["priority"] = raised
    await store.add_entry(
        lease_id=signal.lease_id,
        org_id=signal.org_id,
        case_id=case["id"] if case else None,
        at=signal.occurred_at,
        kind="signal",
        ref_id=signal.signal_id,
        name=signal.signal,
        signal_id=signal.signal_id,
        due_date=signal.due_date,
        summary=signal.reason_en[:300],
        data={
            "rule": signal.rule,
            "policy_version": signal.policy_version,
            "period": signal.period,
            "days_late": signal.days_late,
            "arrears_ore": signal.arrears_ore,
            "risk_score": signal.risk.score,
        },
    )


async def _open_case(
    store: CasesStore,
    event_id: str,
    signal: SignalRaised,
    *,
    priority: str,
    now: datetime,
    emit: Emit,
) -> Row:
    case_id = case_id_for(event_id)
    household = await store.household(signal.lease_id) or {}
    reason = f"opened by signal {signal.signal}"
    values: Row = {
        "id": case_id,
        "lease_id": signal.lease_id,
        "org_id": signal.org_id,
        "status": "new",
        "resolution": None,
        "priority": priority,
        "assignee": None,
        "opened_at": now,
        "updated_at": now,
        "closed_at": None,
        "trigger_signal_id": signal.signal_id,
        "reason": reason,
        "municipality_code": household.get("municipality_code"),
        "household_type": household.get("household_type"),
        "age_band": household.get("age_band"),
        "gender": household.get("gender"),
        "purged_at": None,
    }
    await store.create(values)
    await store.attach_history(signal.lease_id, case_id)
    await store.add_entry(
        lease_id=signal.lease_id,
        org_id=signal.org_id,
        case_id=case_id,
        at=now,
        kind="opened",
        ref_id=case_id,
        name="new",
        summary=reason,
    )
    data = CaseOpened(
        lease_id=signal.lease_id,
        org_id=signal.org_id,
        case_id=case_id,
        opened_at=now,
        trigger_signal_id=signal.signal_id,
        reason=reason,
    )
    await emit(_event(data, f"{case_id}:opened", now))
    return values


async def on_notification(
    store: CasesStore, event: NotificationStatusChanged | TaskChanged
) -> None:
    """Attach an SMS or task state change to the lease's open case (or its history)."""
    case = await store.open_case(event.lease_id)
    common: Row = {
        "lease_id": event.lease_id,
        "org_id": event.org_id,
        "case_id": case["id"] if case else None,
        "at": event.at,
        "signal_id": event.signal_id,
    }
    if isinstance(event, NotificationStatusChanged):
        await store.add_entry(
            **common,
            kind="sms" if event.channel == "sms" else event.channel,
            ref_id=event.notification_id,
            name=event.template,
            status=event.status,
            summary=f"{event.channel} {event.status}",
            data={"signal": event.signal, "language": event.language, "detail": event.detail},
        )
        return
    await store.add_entry(
        **common,
        kind="task",
        ref_id=event.task_id,
        name=event.kind,
        status=event.status,
        outcome=event.outcome,
        summary=f"{event.kind} {event.status}" + (f" ({event.outcome})" if event.outcome else ""),
        data={
            "team": event.team,
            "promised_date": event.promised_date.isoformat() if event.promised_date else None,
        },
    )


async def on_lease(
    store: CasesStore, event: LeaseRegistered | LeaseUpdated | LeaseEnded, *, now: datetime
) -> None:
    """Keep the household attributes statistics need (never names or personnummer)."""
    if isinstance(event, LeaseEnded):
        case = await store.open_case(event.lease_id)
        await store.add_entry(
            lease_id=event.lease_id,
            org_id=event.org_id,
            case_id=case["id"] if case else None,
            at=now,
            kind="lease",
            ref_id=f"{event.lease_id}:ended:{event.end_date.isoformat()}",
            name="lease_ended",
            summary=f"lease ended ({event.reason})",
            data={"end_date": event.end_date.isoformat(), "reason": event.reason},
        )
        return
    first = event.tenants[0]
    attrs: Row = {
        "municipality_code": event.municipality_code,
        "household_type": event.household_type,
        "age_band": first.age_band,
        "gender": first.gender,
    }
    await store.upsert_household(
        {"lease_id": event.lease_id, "org_id": event.org_id, "updated_at": now, **attrs}
    )
    case = await store.open_case(event.lease_id)
    if case is not None:
        await store.update(case["id"], **attrs)


async def change_status(
    store: CasesStore,
    case: Row,
    *,
    status: str,
    resolution: str | None,
    reason: str,
    actor: str,
    now: datetime,
    emit: Emit,
) -> None:
    """Move a case to another status if the engine allows it; publish CaseStatusChanged."""
    reason = engine.check_reason(reason)
    steps = [s.step for s in await store.step_views(case["id"])]
    engine.check_transition(case["status"], status, resolution=resolution, steps=steps)
    closed = now if status in engine.CLOSED else None
    await store.update(
        case["id"],
        status=status,
        resolution=resolution,
        reason=reason,
        updated_at=now,
        closed_at=closed,
    )
    change_id = new_id("S")
    await store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        at=now,
        kind="status",
        ref_id=change_id,
        name=status,
        outcome=resolution,
        summary=reason,
        actor=actor,
    )
    data = CaseStatusChanged(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        status=status,
        resolution=resolution,
        at=now,
        reason=reason,
    )
    await emit(_event(data, f"{case['id']}:{change_id}", now))


async def record_referral(
    store: CasesStore,
    case: Row,
    *,
    body: dict[str, Any],
    actor: str,
    now: datetime,
    emit: Emit,
) -> Row:
    """Record a referral if the gate allows it; publish ReferralRecorded."""
    if case["status"] in engine.CLOSED:
        raise engine.RuleViolation(f"case is {case['status']}; no referrals on a closed case")
    today = local_date(now)
    decision = engine.check_referral(
        body["recipient"],
        body.get("notice"),
        amount_owed_ore=body.get("amount_owed_ore"),
        consents=await store.consent_views(case["id"]),
        steps=await store.step_views(case["id"]),
        arrears_cleared_on=await store.arrears_cleared_on(case["lease_id"]),
        today=today,
        now=now,
    )
    values: Row = {
        "id": new_id("R"),
        "case_id": case["id"],
        "recipient": body["recipient"],
        "notice": body.get("notice"),
        "legal_basis": decision.legal_basis,
        "referred_on": body["referred_on"],
        "summary": body.get("summary"),
        "amount_owed_ore": body.get("amount_owed_ore"),
        "outcome": body.get("outcome"),
        "statutory": decision.statutory,
        "created_by": actor,
        "created_at": now,
    }
    await store.add_referral(values)
    await store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        at=now,
        kind="referral",
        ref_id=values["id"],
        name=values["recipient"],
        outcome=values["outcome"],
        summary=decision.legal_basis[:300],
        actor=actor,
        data={"statutory": decision.statutory, "notice": values["notice"]},
    )
    data = ReferralRecorded(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        referral_id=values["id"],
        recipient=values["recipient"],
        legal_basis=decision.legal_basis,
        statutory=decision.statutory,
        referred_on=values["referred_on"],
        outcome=values["outcome"],
    )
    await emit(_event(data, f"{values['id']}:recorded", now))
    if values["notice"] == "termination_notice":
        await _notice_step(store, case, values, actor=actor, now=now, emit=emit)
    return values


async def _notice_step(
    store: CasesStore, case: Row, referral: Row, *, actor: str, now: datetime, emit: Emit
) -> None:
    """The termination notice to social services (formulär 3) is also a legal step."""
    steps = await store.step_views(case["id"])
    if any(
        s.step == "social_services_notice_sent" and s.step_date == referral["referred_on"]
        for s in steps
    ):
        return
    body = {
        "step": "social_services_notice_sent",
        "step_date": referral["referred_on"],
        "amount_owed_ore": referral["amount_owed_ore"],
    }
    await record_legal_step(store, case, body=body, actor=actor, now=now, emit=emit)


async def record_legal_step(
    store: CasesStore, case: Row, *, body: dict[str, Any], actor: str, now: datetime, emit: Emit
) -> Row:
    """Record a legal step; publish LegalStepRecorded (rules follows the recovery period).

    The same step on the same date again (e.g. after the termination notice recorded it)
    returns the recorded one and publishes nothing.
    """
    for existing in await store.legal_steps(case["id"]):
        if existing["step"] == body["step"] and existing["step_date"] == body["step_date"]:
            return existing
    values: Row = {
        "id": new_id("L"),
        "case_id": case["id"],
        "step": body["step"],
        "step_date": body["step_date"],
        "amount_owed_ore": body.get("amount_owed_ore"),
        "created_by": actor,
        "created_at": now,
    }
    await store.add_legal_step(values)
    await store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        at=now,
        kind="legal_step",
        ref_id=values["id"],
        name=values["step"],
        summary=f"{values['step']} on {values['step_date'].isoformat()}",
        actor=actor,
    )
    data = LegalStepRecorded(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        step_id=values["id"],
        step=values["step"],
        step_date=values["step_date"],
        amount_owed_ore=values["amount_owed_ore"],
    )
    await emit(_event(data, f"{values['id']}:recorded", now))
    return values


async def agree_plan(
    store: CasesStore, case: Row, *, body: dict[str, Any], actor: str, now: datetime, emit: Emit
) -> Row:
    """Record a payment plan; publish PaymentPlanAgreed (rules monitors the installments)."""
    if case["status"] in engine.CLOSED:
        raise engine.RuleViolation(f"case is {case['status']}; no plans on a closed case")
    items = [(i["due_date"], int(i["amount_ore"])) for i in body["installments"]]
    values: Row = {
        "id": new_id("P"),
        "case_id": case["id"],
        "agreed_on": body["agreed_on"],
        "installment_count": len(items),
        "total_ore": sum(a for _, a in items),
        "created_by": actor,
        "created_at": now,
    }
    await store.add_plan(values, items)
    await store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        at=now,
        kind="plan",
        ref_id=values["id"],
        name="payment_plan_agreed",
        summary=f"payment plan with {len(items)} installments",
        actor=actor,
    )
    data = PaymentPlanAgreed(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        plan_id=values["id"],
        case_id=case["id"],
        agreed_on=values["agreed_on"],
        installments=tuple(Installment(due_date=d, amount_ore=a) for d, a in items),
    )
    await emit(_event(data, f"{values['id']}:agreed", now))
    return values
