"""HTTP API of the rules service (port 8002): lease status, policy, validation, what-if."""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rules.config import RulesSettings
from rules.engine import Evaluation, evaluate
from rules.engine.settlement import RETRACTED
from rules.engine.whatif import Flag, compare
from rules.policy import Policy, PolicyError, PolicySet, parse_document, validate_policy
from rules.schemas import (
    ChargeRead,
    DeadlineRead,
    FlagRead,
    LeaseStatus,
    PolicyRead,
    PolicyValid,
    SignalRead,
    WhatIfReport,
    WhatIfRequest,
)
from rules.service import load_policies, start_rules
from rules.store import RulesStore
from shared.clock import Clock
from shared.http import (
    ErrorBody,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
    create_service_app,
    document_errors,
    health_router,
    install_error_handlers,
)
from shared.runtime import Runtime, service_runtime

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceToken",
    description="The service token (BOKVAR_SERVICE_TOKEN).",
)
MAX_POLICY_BYTES = 256 * 1024
MAX_WHATIF_LEASES = 5_000
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong service token."},
    422: {"model": ErrorBody, "description": "Invalid input: the field path and the reason."},
}
WHAT_HAPPENS = {
    "pre_due_reminder": "a friendly reminder SMS before the due date",
    "late_rent_detected": "an SMS to the tenant about the unpaid rent",
    "personal_contact_needed": "a phone-call task for staff",
    "forfeiture_possible": "a case is opened; payment plan and budget and debt advice offered",
    "recovery_period_started": "the three-week recovery period (JB 12:44) starts",
    "recovery_period_reminder": "a weekly recovery-period reminder",
    "recovery_period_ending": "a warning that the recovery period ends in 3 days",
    "recovery_period_ended": "the recovery period ends unpaid",
    "enforcement_possible": "an application to Kronofogden becomes possible",
    "plan_breached": "the payment plan is checked; a missed installment opens a case",
}
# in order of severity (the status shows the most severe open one)
_STAGE_SIGNALS = (
    "late_rent_detected",
    "personal_contact_needed",
    "forfeiture_possible",
    "recovery_period_started",
    "recovery_period_reminder",
    "recovery_period_ending",
    "recovery_period_ended",
    "enforcement_possible",
)


def _authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> None:
    settings: RulesSettings = request.app.state.settings
    expected = settings.service_token.get_secret_value()
    if credentials is None or not hmac.compare_digest(credentials.credentials, expected):
        raise Unauthorized("missing or wrong service token")


async def _store(request: Request) -> AsyncIterator[RulesStore]:
    rt: Runtime = request.app.state.rt
    async with rt.database.sessionmaker() as session:
        yield RulesStore(session)


Store = Annotated[RulesStore, Depends(_store)]


def _policies(request: Request) -> PolicySet:
    policies: PolicySet = request.app.state.policies
    return policies


Policies = Annotated[PolicySet, Depends(_policies)]


async def lease_status(
    store: RulesStore, policies: PolicySet, lease_id: str, rt: Runtime
) -> LeaseStatus:
    """Build a lease's status at the runtime clock's now."""
    state = (await store.load_states([lease_id])).get(lease_id)
    if state is None:
        raise NotFound(f"unknown lease {lease_id}")
    policy = policies.for_org(state.org_id)
    emitted = await store.list_signals(lease_id)
    watermark = (await store.watermarks([state.org_id])).get(state.org_id)
    ev = evaluate(state, policy, rt.clock.now(), frozenset(r.signal_id for r in emitted), watermark)
    arrears = ev.ledger.arrears_ore(ev.today)
    upcoming = sorted(ev.deadlines, key=lambda d: (d.due_at, d.stage))
    deadlines = [
        DeadlineRead(
            due_at=d.due_at,
            signal=d.kind,
            stage=d.stage,
            ref=d.ref,
            what_happens=WHAT_HAPPENS.get(d.kind, d.kind),
        )
        for d in upcoming
    ]
    return LeaseStatus(
        lease_id=lease_id,
        org_id=state.org_id,
        policy_version=policy.version,
        as_of=ev.today,
        balance_ore=ev.ledger.balance_ore,
        arrears_ore=arrears,
        months_of_rent_owed=round(arrears / state.monthly_rent_ore, 2)
        if state.monthly_rent_ore
        else 0.0,
        stage=_most_severe(emitted, lease_id, ev) if arrears > 0 else None,
        held=_jsonable(ev.held),
        watermark=watermark.booked_through if watermark else None,
        next_deadline=deadlines[0] if deadlines else None,
        upcoming=deadlines,
        risk=ev.risk.model(),
        charges=[
            ChargeRead(
                period=c.period,
                invoice_id=c.invoice_id,
                due_date=c.due_date,
                amount_ore=c.amount_ore,
                open_ore=c.open_ore,
                paid_on=c.paid_on,
                days_late=c.days_late(ev.today),
            )
            for c in ev.ledger.charges
        ],
        plans=_jsonable(ev.plans),
        recovery=_jsonable(ev.recovery),
        signals=[
            SignalRead(signal_id=r.signal_id, signal=r.signal, occurred_at=r.occurred_at)
            for r in emitted
        ],
    )


def _most_severe(emitted: list[Any], lease_id: str, ev: Evaluation) -> str | None:
    """Return the most severe stage still open: not retracted, its charge (if any) unpaid."""
    ids = {r.signal_id for r in emitted}
    open_periods = {c.period for c in ev.ledger.charges if c.open_ore > 0}
    ladder = {"late_rent_detected", "personal_contact_needed", "forfeiture_possible"}
    best: str | None = None
    for r in emitted:
        if r.signal not in _STAGE_SIGNALS or f"{r.signal_id}{RETRACTED}" in ids:
            continue
        ref = r.signal_id[len(lease_id) + 1 :].rsplit(":", 1)[0]
        if r.signal in ladder and ref not in open_periods:
            continue  # that charge is paid: its stage is over
        if best is None or _STAGE_SIGNALS.index(r.signal) > _STAGE_SIGNALS.index(best):
            best = r.signal
    return best


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _candidate(document: dict[str, Any] | str) -> Policy:
    try:
        parsed = parse_document(document) if isinstance(document, str) else document
        return validate_policy(parsed)
    except PolicyError as exc:
        raise Unprocessable(
            "invalid candidate policy",
            detail=[{"field": f"policy.{e['field']}", "reason": e["reason"]} for e in exc.errors],
        ) from exc


def _flags(items: list[Flag]) -> list[FlagRead]:
    return [
        FlagRead(lease_id=f.lease_id, signal_id=f.signal_id, signal=f.signal, on=f.on)
        for f in items
    ]


def _router() -> APIRouter:
    r = APIRouter(prefix="/v1", dependencies=[Depends(_authorize)], responses=ERRORS)

    @r.get("/leases/{lease_id}/status", response_model=LeaseStatus)
    async def get_status(
        lease_id: str, request: Request, store: Store, policies: Policies
    ) -> LeaseStatus:
        """Return a lease's balance, arrears, stage, next deadline, risk and history."""
        return await lease_status(store, policies, lease_id, request.app.state.rt)

    @r.get("/policy", response_model=PolicyRead)
    async def get_policy(policies: Policies) -> PolicyRead:
        """Return the active default policy and which organisations override it."""
        return PolicyRead(
            version=policies.default.version,
            policy=policies.default.model_dump(mode="json"),
            overrides={org: p.version for org, p in policies.per_org.items()},
        )

    @r.post("/policy/validate", response_model=PolicyValid)
    async def validate(request: Request) -> PolicyValid:
        """Validate a policy document (YAML or JSON body); 422 lists each field and reason."""
        body = await request.body()
        if len(body) > MAX_POLICY_BYTES:
            raise PayloadTooLarge(f"policy over {MAX_POLICY_BYTES} bytes")
        try:
            policy = validate_policy(parse_document(body))
        except PolicyError as exc:
            raise Unprocessable("invalid policy", detail=exc.errors) from exc
        return PolicyValid(version=policy.version, stages=[s.name for s in policy.ladder])

    @r.post("/what-if", response_model=WhatIfReport)
    async def what_if(body: WhatIfRequest, store: Store, policies: Policies) -> WhatIfReport:
        """Replay stored history of a date range under a candidate policy; compare flags."""
        candidate = _candidate(body.policy)
        ids = body.lease_ids or await store.lease_ids_with_entries(body.from_date, body.to_date)
        if len(ids) > MAX_WHATIF_LEASES:
            raise Unprocessable(
                "too many leases",
                detail=[{"field": "lease_ids", "reason": f"at most {MAX_WHATIF_LEASES}"}],
            )
        states = [
            s for s in (await store.load_states(ids)).values() if body.org_id in (None, s.org_id)
        ]
        active = policies.for_org(body.org_id) if body.org_id else policies.default
        out = compare(states, active, candidate, body.from_date, body.to_date)
        counts: dict[str, dict[str, int]] = {}
        for side in ("active", "candidate"):
            for signal, n in Counter(f.signal for f in out[side]).items():
                counts.setdefault(signal, {"active": 0, "candidate": 0})[side] = n
        return WhatIfReport(
            active_version=active.version,
            candidate_version=candidate.version,
            leases=len(states),
            active=_flags(out["active"]),
            candidate=_flags(out["candidate"]),
            only_active=_flags(out["only_active"]),
            only_candidate=_flags(out["only_candidate"]),
            counts=counts,
        )

    return r


def create_app(
    settings: RulesSettings, *, clock: Clock | None = None, run_workers: bool = True
) -> FastAPI:
    """Build the rules app; its lifespan owns the database, producer, consumer and sweep."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(settings, "rules", clock=clock) as rt:
            app.state.rt = rt
            if run_workers:
                await start_rules(rt, settings, app.state.policies)
            yield

    app = create_service_app("rules", title="Bokvar rules", lifespan=lifespan)
    app.state.settings = settings
    app.state.policies = load_policies(settings)
    install_error_handlers(app)

    def checks(request: Request) -> dict[str, object]:
        rt: Runtime = request.app.state.rt

        async def broker() -> bool:
            return rt.producer_ready and await rt.producer.reachable()

        async def database() -> bool:
            await rt.database.ping()
            return True

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    app.include_router(_router())
    document_errors(app)
    return app
