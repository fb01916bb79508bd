"""Cases: the list, one case (timeline, consent, referrals, legal steps, plan, meetings)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from services.console.clients import BackendError, Backends
from services.console.render import Api, render
from services.console.session import Csrf, SignedIn, StaffUser, User
from services.console.views import add_months, is_disturbance, tracks
from shared.events.case import LegalStep

router = APIRouter(tags=["cases"], include_in_schema=False)
Row = dict[str, Any]
RECIPIENTS = ("social_services", "budget_debt_advice", "kronofogden")
NOTICES = ("termination_notice", "disturbance_warning")
STEPS: tuple[str, ...] = get_args(LegalStep)
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:\-]{1,64}$")]
PARTICIPANTS = ("tenant", "landlord", "social_services", "budget_debt_advice", "other")
SECTIONS = ("consents", "referrals", "legal-steps", "payment-plans", "meetings")


def missing_steps(detail: Any) -> list[tuple[str, str]]:
    """Split the gate's `missing` list into (step code, remark), e.g. the date a period ends."""
    if not isinstance(detail, dict) or not isinstance(detail.get("missing"), list):
        return []
    out = []
    for item in detail["missing"]:
        code, _, rest = str(item).partition(" ")
        out.append((code, rest))
    return out


@router.get("/cases")
async def case_list(request: Request, user: SignedIn, api: Api) -> Response:
    """List the cases the user may see (the cases API decides which)."""
    cases = await api.cases(user, "GET", "/v1/cases", params={"limit": 500})
    return render(request, "cases.html", cases=cases["items"])


async def _section(api: Backends, user: User, case_id: str, name: str) -> list[Row]:
    """Read one section; a section the role may not see is shown as absent, not as an error."""
    try:
        rows: list[Row] = await api.cases(user, "GET", f"/v1/cases/{case_id}/{name}")
    except BackendError as exc:
        if exc.status == 403:
            return []
        raise
    return rows


async def case_context(api: Backends, user: User, case_id: str) -> Row:
    """Gather everything the case page shows."""
    case = await api.cases(user, "GET", f"/v1/cases/{case_id}")
    timeline, *sections = await asyncio.gather(
        api.cases(user, "GET", f"/v1/cases/{case_id}/timeline"),
        *(_section(api, user, case_id, name) for name in SECTIONS),
    )
    consents, referrals, legal_steps, plans, meetings = sections
    entries = timeline["entries"]
    disturbance = is_disturbance(entries, referrals)
    return {
        "case": case,
        "timeline": list(reversed(entries)),
        "consents": consents,
        "referrals": referrals,
        "legal_steps": legal_steps,
        "plans": plans,
        "meetings": meetings,
        "tracks": tracks(entries, referrals, legal_steps, meetings) if disturbance else None,
        "recipients": RECIPIENTS,
        "notices": NOTICES,
        "steps": STEPS,
        "participants": PARTICIPANTS,
        "today": api.clock.now().date(),
    }


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: Id, user: SignedIn, api: Api) -> Response:
    """Show one case."""
    ctx = await case_context(api, user, case_id)
    return render(request, "case.html", message=request.query_params.get("msg"), **ctx)


async def _post(
    request: Request, api: Backends, user: User, case_id: str, path: str, body: Row
) -> Response:
    """Post to the cases API; on a refusal show the case again with the reason."""
    try:
        await api.cases(user, "POST", f"/v1/cases/{case_id}/{path}", json=body)
    except BackendError as exc:
        if exc.status not in (403, 409, 422):
            raise
        ctx = await case_context(api, user, case_id)
        return render(
            request,
            "case.html",
            status=exc.status,
            refusal=exc,
            missing=missing_steps(exc.detail),
            **ctx,
        )
    return RedirectResponse(f"/cases/{case_id}?msg=case.saved", status_code=303)


@router.post("/cases/{case_id}/notes", dependencies=[Csrf])
async def add_note(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    text: Annotated[str, Form(min_length=1, max_length=4000)],
) -> Response:
    """Add a factual note to the timeline."""
    return await _post(request, api, user, case_id, "notes", {"text": text})


@router.post("/cases/{case_id}/consents", dependencies=[Csrf])
async def give_consent(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    given_on: Annotated[date, Form()],
    document_ref: Annotated[str, Form(min_length=1, max_length=200)],
    scope: Annotated[list[str], Form()],
    expires_on: Annotated[date | None, Form()] = None,
) -> Response:
    """Record a signed consent form."""
    body = {
        "scope": scope,
        "given_on": given_on.isoformat(),
        "expires_on": expires_on and expires_on.isoformat(),
        "document_ref": document_ref,
    }
    return await _post(request, api, user, case_id, "consents", body)


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw", dependencies=[Csrf])
async def withdraw_consent(
    request: Request, case_id: Id, consent_id: Id, user: StaffUser, api: Api
) -> Response:
    """Withdraw a consent (it stops covering anything at once)."""
    return await _post(request, api, user, case_id, f"consents/{consent_id}/withdraw", {})


@router.post("/cases/{case_id}/referrals", dependencies=[Csrf])
async def refer(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    recipient: Annotated[str, Form()],
    referred_on: Annotated[date, Form()],
    notice: Annotated[str, Form()] = "",
    amount_owed_kr: Annotated[int | None, Form(ge=0, le=10**10)] = None,
    summary: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Record a referral; the gate's refusal is shown with what is missing."""
    body: Row = {
        "recipient": recipient,
        "notice": notice or None,
        "referred_on": referred_on.isoformat(),
        "amount_owed_ore": None if amount_owed_kr is None else amount_owed_kr * 100,
        "summary": summary.strip() or None,
    }
    return await _post(request, api, user, case_id, "referrals", body)


@router.post("/cases/{case_id}/legal-steps", dependencies=[Csrf])
async def legal_step(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    step: Annotated[str, Form()],
    step_date: Annotated[date, Form()],
    amount_owed_kr: Annotated[int | None, Form(ge=0, le=10**10)] = None,
) -> Response:
    """Record a legal step."""
    body = {
        "step": step,
        "step_date": step_date.isoformat(),
        "amount_owed_ore": None if amount_owed_kr is None else amount_owed_kr * 100,
    }
    return await _post(request, api, user, case_id, "legal-steps", body)


@router.post("/cases/{case_id}/payment-plans", dependencies=[Csrf])
async def payment_plan(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    agreed_on: Annotated[date, Form()],
    first_due: Annotated[date, Form()],
    installment_kr: Annotated[int, Form(gt=0, le=10**8)],
    count: Annotated[int, Form(ge=1, le=60)],
) -> Response:
    """Agree a payment plan of equal monthly installments."""
    installments = [
        {"due_date": add_months(first_due, i).isoformat(), "amount_ore": installment_kr * 100}
        for i in range(count)
    ]
    body = {"agreed_on": agreed_on.isoformat(), "installments": installments}
    return await _post(request, api, user, case_id, "payment-plans", body)


@router.post("/cases/{case_id}/meetings", dependencies=[Csrf])
async def meeting(
    request: Request,
    case_id: Id,
    user: StaffUser,
    api: Api,
    held_on: Annotated[date, Form()],
    participants: Annotated[list[str], Form()],
    outcome: Annotated[str, Form(min_length=1, max_length=1000)],
) -> Response:
    """Record a (three-party) meeting."""
    body = {"held_on": held_on.isoformat(), "participants": participants, "outcome": outcome}
    return await _post(request, api, user, case_id, "meetings", body)
