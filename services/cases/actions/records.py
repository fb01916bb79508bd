"""Case records made through the API: status, referrals, legal steps, payment plans."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.cases import engine
from services.cases.actions.common import Emit, Row, event, new_id
from services.cases.store import CasesStore
from shared.clock import local_date
from shared.events import (
    CaseStatusChanged,
    Installment,
    LegalStepRecorded,
    PaymentPlanAgreed,
    ReferralRecorded,
)


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
    change_id: str | None = None,
) -> None:
    """Move a case to another status if the engine allows it; publish CaseStatusChanged.

    `change_id` makes the change's ids deterministic (changes made by the consumer).
    """
    reason = engine.check_reason(reason)
    steps = [s.step for s in await store.step_views(case["id"])]
    engine.check_transition(case["status"], status, resolution=resolution, steps=steps)
    closed = now if status in engine.CLOSED else None
    changes: Row = {
        "status": status,
        "resolution": resolution,
        "reason": reason,
        "updated_at": now,
        "closed_at": closed,
    }
    await store.update(case["id"], **changes)
    case.update(changes)  # the consumer's cached open case follows
    if closed is not None:
        store.forget_open(case["lease_id"])
    change_id = change_id or new_id("S")
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
    await emit(event(data, f"{case['id']}:{change_id}", now))


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
    await emit(event(data, f"{values['id']}:recorded", now))
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
    await emit(event(data, f"{values['id']}:recorded", now))
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
    await emit(event(data, f"{values['id']}:agreed", now))
    return values
