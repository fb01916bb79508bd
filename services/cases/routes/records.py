"""Referrals, consents, legal steps, payment plans and meetings of a case."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.cases import actions, engine
from services.cases.deps import Anyone, Ctx, Staff, case_for
from services.cases.schemas import (
    CaseId,
    ConsentCreate,
    ConsentRead,
    EntityId,
    InstallmentBody,
    LegalStepCreate,
    LegalStepRead,
    MeetingCreate,
    MeetingRead,
    PaymentPlanCreate,
    PaymentPlanRead,
    ReferralCreate,
    ReferralOutcome,
    ReferralRead,
)
from shared.clock import local_date
from shared.http import Conflict, NotFound

router = APIRouter(prefix="/v1/cases/{case_id}", tags=["case records"])
Row = dict[str, Any]


@router.get("/referrals", response_model=list[ReferralRead])
async def list_referrals(ctx: Anyone, case_id: CaseId) -> list[ReferralRead]:
    """List a case's referrals (statutory notices only, without consent, for social services)."""
    _, sections = await case_for(ctx, case_id, section="referrals", action="referral.read")
    rows = await ctx.store.referrals(case_id)
    if sections == engine.STATUTORY_SECTIONS:
        rows = [r for r in rows if r["statutory"]]
    return [ReferralRead.model_validate(r) for r in rows]


@router.post(
    "/referrals",
    response_model=ReferralRead,
    status_code=201,
    responses={403: {"description": "no consent"}, 409: {"description": "gate not passed"}},
)
async def create_referral(ctx: Staff, case_id: CaseId, body: ReferralCreate) -> ReferralRead:
    """Record a referral; the gate refuses what the law or missing consent does not allow."""
    case, _ = await case_for(ctx, case_id, section="referrals", action="referral.create")
    values = await actions.record_referral(
        ctx.store,
        case,
        body=body.model_dump(),
        actor=ctx.principal.sub,
        now=ctx.now,
        emit=ctx.emit,
    )
    return ReferralRead.model_validate(values)


@router.post("/referrals/{referral_id}/outcome", response_model=ReferralRead)
async def set_referral_outcome(
    ctx: Staff, case_id: CaseId, referral_id: EntityId, body: ReferralOutcome
) -> ReferralRead:
    """Record the outcome of a referral."""
    await case_for(ctx, case_id, section="referrals", action="referral.outcome")
    if not await ctx.store.set_referral_outcome(referral_id, case_id, body.outcome):
        raise NotFound(f"no referral {referral_id} in case {case_id}")
    row = await ctx.store.referral(referral_id, case_id)
    assert row is not None
    return ReferralRead.model_validate(row)


def _consent_read(ctx_now: Any, row: Row) -> ConsentRead:
    view = engine.ConsentView(
        tuple(row["scope"]), row["given_on"], row["expires_on"], row["withdrawn_at"]
    )
    valid = any(
        engine.consent_covers([view], r, today=local_date(ctx_now), now=ctx_now) for r in view.scope
    )
    return ConsentRead.model_validate({**row, "valid": valid})


@router.get("/consents", response_model=list[ConsentRead])
async def list_consents(ctx: Anyone, case_id: CaseId) -> list[ConsentRead]:
    """List a case's consents and whether each is in force."""
    await case_for(ctx, case_id, section="consents", action="consent.read")
    return [_consent_read(ctx.now, r) for r in await ctx.store.consents(case_id)]


@router.post("/consents", response_model=ConsentRead, status_code=201)
async def give_consent(ctx: Staff, case_id: CaseId, body: ConsentCreate) -> ConsentRead:
    """Record a signed consent form (scope of recipients, given, expires, document)."""
    case, _ = await case_for(ctx, case_id, section="consents", action="consent.create")
    values: Row = {
        "id": actions.new_id("K"),
        "case_id": case_id,
        "scope": sorted(set(body.scope)),
        "given_on": body.given_on,
        "expires_on": body.expires_on,
        "withdrawn_at": None,
        "document_ref": body.document_ref,
        "created_by": ctx.principal.sub,
        "created_at": ctx.now,
    }
    await ctx.store.add_consent(values)
    await _entry(ctx, case, "consent", values["id"], "given", f"consent for {values['scope']}")
    return _consent_read(ctx.now, values)


@router.post("/consents/{consent_id}/withdraw", response_model=ConsentRead)
async def withdraw_consent(ctx: Staff, case_id: CaseId, consent_id: EntityId) -> ConsentRead:
    """Withdraw a consent; it stops covering anything at once."""
    case, _ = await case_for(ctx, case_id, section="consents", action="consent.withdraw")
    if await ctx.store.consent(consent_id, case_id) is None:
        raise NotFound(f"no consent {consent_id} in case {case_id}")
    if not await ctx.store.withdraw_consent(consent_id, case_id, ctx.now):
        raise Conflict(f"consent {consent_id} is already withdrawn")
    await _entry(ctx, case, "consent", consent_id, "withdrawn", "consent withdrawn")
    row = await ctx.store.consent(consent_id, case_id)
    assert row is not None
    return _consent_read(ctx.now, row)


@router.get("/legal-steps", response_model=list[LegalStepRead])
async def list_legal_steps(ctx: Anyone, case_id: CaseId) -> list[LegalStepRead]:
    """List a case's legal steps in date order."""
    await case_for(ctx, case_id, section="legal_steps", action="legal_step.read")
    return [LegalStepRead.model_validate(r) for r in await ctx.store.legal_steps(case_id)]


@router.post("/legal-steps", response_model=LegalStepRead, status_code=201)
async def create_legal_step(ctx: Staff, case_id: CaseId, body: LegalStepCreate) -> LegalStepRead:
    """Record a legal step; it is published so the rules service follows the recovery period."""
    case, _ = await case_for(ctx, case_id, section="legal_steps", action="legal_step.create")
    values = await actions.record_legal_step(
        ctx.store, case, body=body.model_dump(), actor=ctx.principal.sub, now=ctx.now, emit=ctx.emit
    )
    return LegalStepRead.model_validate(values)


@router.get("/payment-plans", response_model=list[PaymentPlanRead])
async def list_plans(ctx: Anyone, case_id: CaseId) -> list[PaymentPlanRead]:
    """List a case's payment plans with their installments."""
    await case_for(ctx, case_id, section="payment_plans", action="plan.read")
    return [
        PaymentPlanRead.model_validate(
            {
                **plan,
                "installments": [
                    InstallmentBody(due_date=i["due_date"], amount_ore=i["amount_ore"])
                    for i in items
                ],
            }
        )
        for plan, items in await ctx.store.plans(case_id)
    ]


@router.post("/payment-plans", response_model=PaymentPlanRead, status_code=201)
async def create_plan(ctx: Staff, case_id: CaseId, body: PaymentPlanCreate) -> PaymentPlanRead:
    """Agree a payment plan; it is published so the rules service monitors each installment."""
    case, _ = await case_for(ctx, case_id, section="payment_plans", action="plan.create")
    values = await actions.agree_plan(
        ctx.store, case, body=body.model_dump(), actor=ctx.principal.sub, now=ctx.now, emit=ctx.emit
    )
    return PaymentPlanRead.model_validate({**values, "installments": body.installments})


@router.get("/meetings", response_model=list[MeetingRead])
async def list_meetings(ctx: Anyone, case_id: CaseId) -> list[MeetingRead]:
    """List a case's meetings."""
    await case_for(ctx, case_id, section="meetings", action="meeting.read")
    return [MeetingRead.model_validate(r) for r in await ctx.store.meetings(case_id)]


@router.post("/meetings", response_model=MeetingRead, status_code=201)
async def create_meeting(ctx: Staff, case_id: CaseId, body: MeetingCreate) -> MeetingRead:
    """Record a (three-party) meeting: date, participants, outcome."""
    case, _ = await case_for(ctx, case_id, section="meetings", action="meeting.create")
    values: Row = {
        "id": actions.new_id("M"),
        "case_id": case_id,
        "held_on": body.held_on,
        "participants": list(body.participants),
        "outcome": body.outcome,
        "created_by": ctx.principal.sub,
        "created_at": ctx.now,
    }
    await ctx.store.add_meeting(values)
    await _entry(ctx, case, "meeting", values["id"], None, "meeting held")
    return MeetingRead.model_validate(values)


async def _entry(
    ctx: Ctx, case: Row, kind: str, ref_id: str, status: str | None, summary: str
) -> None:
    await ctx.store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case["id"],
        at=ctx.now,
        kind=kind,
        ref_id=ref_id,
        status=status,
        summary=summary[:300],
        actor=ctx.principal.sub,
    )
