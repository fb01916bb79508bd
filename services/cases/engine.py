"""Pure decisions of the cases service: status transitions, referral gates, access.

No I/O, no clock: `today`/`now` are passed in. Violations raise `RuleViolation`, which
the API renders as a 4xx with the reason (and, for Kronofogden, the missing steps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

CaseStatus = Literal[
    "new", "in_contact", "payment_plan", "referred", "pending_review", "resolved", "evicted"
]
Resolution = Literal["paid", "plan_completed", "moved_voluntarily", "raised_in_error", "other"]
Recipient = Literal["social_services", "budget_debt_advice", "kronofogden"]
Notice = Literal["termination_notice", "disturbance_warning"]
Priority = Literal["low", "normal", "high", "urgent"]
Role = Literal["landlord_staff", "bosocial", "social_services", "budget_debt_advice", "admin"]
Section = Literal[
    "case", "timeline", "notes", "referrals", "consents", "legal_steps", "payment_plans", "meetings"
]

ROLES: tuple[Role, ...] = (
    "landlord_staff",
    "bosocial",
    "social_services",
    "budget_debt_advice",
    "admin",
)
STAFF_ROLES: frozenset[Role] = frozenset({"landlord_staff", "bosocial", "admin"})
ALL_SECTIONS: frozenset[Section] = frozenset(
    {
        "case",
        "timeline",
        "notes",
        "referrals",
        "consents",
        "legal_steps",
        "payment_plans",
        "meetings",
    }
)
# What a statutory notice lets social services see: the case, the notices, the legal steps.
STATUTORY_SECTIONS: frozenset[Section] = frozenset({"case", "referrals", "legal_steps"})

CLOSED: frozenset[str] = frozenset({"resolved", "evicted"})
OPENING_SIGNALS: frozenset[str] = frozenset(
    {"forfeiture_possible", "complaint_pattern", "high_risk", "plan_breached"}
)
#: Signals about unpaid rent: an `arrears_cleared` after them means they no longer stand.
ARREARS_SIGNALS: frozenset[str] = frozenset(
    {
        "late_rent_detected",
        "personal_contact_needed",
        "forfeiture_possible",
        "recovery_period_started",
        "recovery_period_reminder",
        "recovery_period_ending",
        "recovery_period_ended",
        "enforcement_possible",
        "plan_breached",
    }
)
#: Signals that are never a reason for a case to stay open.
_NOT_A_REASON: frozenset[str] = frozenset({"pre_due_reminder", "arrears_cleared"})
_PRIORITY_RANK: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
_SIGNAL_PRIORITY: dict[str, Priority] = {
    "forfeiture_possible": "high",
    "plan_breached": "high",
    "high_risk": "high",
    "complaint_pattern": "normal",
    "recovery_period_started": "urgent",
    "recovery_period_ending": "urgent",
    "recovery_period_ended": "urgent",
    "enforcement_possible": "urgent",
}
_CLOSING = frozenset({"resolved", "evicted"})
_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"in_contact", "payment_plan", "referred", "pending_review"}) | _CLOSING,
    "in_contact": frozenset({"payment_plan", "referred", "pending_review"}) | _CLOSING,
    "payment_plan": frozenset({"in_contact", "referred", "pending_review"}) | _CLOSING,
    "referred": frozenset({"in_contact", "payment_plan", "pending_review"}) | _CLOSING,
    # Arrears paid: someone checks and closes (resolved), or finds it is not over.
    "pending_review": frozenset({"new", "in_contact", "payment_plan", "referred"}) | _CLOSING,
    "resolved": frozenset(),
    "evicted": frozenset(),
}
NOTICE_BASIS: dict[str, str] = {
    "termination_notice": "JB 12:44 (notice of termination for arrears, formulär 3)",
    "disturbance_warning": "JB 12:25 (warning for disturbance)",
}
KRONOFOGDEN_STEPS: tuple[str, ...] = (
    "termination_sent",
    "recovery_notice_served",
    "social_services_notice_sent",
)
RECOVERY_PERIOD = timedelta(weeks=3)


class RuleViolation(Exception):
    """A request breaks a rule; `detail` says which and why (rendered as 4xx)."""

    def __init__(self, message: str, *, detail: object = None, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message
        self.status = status


@dataclass(frozen=True, slots=True)
class ConsentView:
    """A consent as the rules see it."""

    scope: tuple[str, ...]
    given_on: date
    expires_on: date | None
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True)
class StepView:
    """A recorded legal step."""

    step: str
    step_date: date


@dataclass(frozen=True, slots=True)
class ReferralDecision:
    """An allowed referral: whether it is a statutory notice, and its legal basis."""

    statutory: bool
    legal_basis: str


def signal_priority(signal: str, score: int) -> Priority:
    """Return the priority a signal calls for; a risk score of 80+ makes it urgent."""
    if score >= 80:
        return "urgent"
    return _SIGNAL_PRIORITY.get(signal, "normal")


def raise_priority(current: str, wanted: str) -> str:
    """Return the higher of two priorities (signals never lower a priority)."""
    return wanted if _PRIORITY_RANK[wanted] > _PRIORITY_RANK.get(current, 1) else current


def opens_case(signal: str) -> bool:
    """Tell whether a signal opens a case when none is open for the lease."""
    return signal in OPENING_SIGNALS


@dataclass(frozen=True, slots=True)
class SignalView:
    """A signal on a case's timeline, in the order it arrived."""

    signal_id: str
    signal: str
    retracted: bool = False
    arrears_ore: int | None = None


def standing_signals(signals: Sequence[SignalView]) -> list[SignalView]:
    """Return the signals that still call for a case, in timeline order.

    A retracted signal never stands; an arrears signal stands until an `arrears_cleared`
    arrives after it; `pre_due_reminder` and `arrears_cleared` are never reasons.
    """
    standing: list[SignalView] = []
    for view in signals:
        if view.retracted:
            continue
        if view.signal == "arrears_cleared":
            standing = [s for s in standing if s.signal not in ARREARS_SIGNALS]
        elif view.signal not in _NOT_A_REASON:
            standing.append(view)
    return standing


def _trigger(signals: Sequence[SignalView], trigger_signal_id: str | None) -> SignalView | None:
    return next((s for s in signals if s.signal_id == trigger_signal_id), None)


def review_after_payment(
    status: str, trigger_signal_id: str | None, signals: Sequence[SignalView]
) -> bool:
    """Tell whether an open case opened for arrears awaits review now that they are paid."""
    trigger = _trigger(signals, trigger_signal_id)
    return (
        status not in CLOSED
        and status != "pending_review"
        and trigger is not None
        and trigger.signal in ARREARS_SIGNALS
        and not standing_signals(signals)
    )


def raised_in_error(
    status: str, trigger_signal_id: str | None, retracted_id: str, signals: Sequence[SignalView]
) -> bool:
    """Tell whether retracting `retracted_id` leaves an open case without any reason."""
    return (
        status not in CLOSED and trigger_signal_id == retracted_id and not standing_signals(signals)
    )


def arrears_before_payment(signals: Sequence[SignalView]) -> int | None:
    """Return the arrears the latest standing arrears signal reported (what a payment cleared)."""
    owed = [s.arrears_ore for s in standing_signals(signals) if s.signal in ARREARS_SIGNALS]
    return next((o for o in reversed(owed) if o is not None), None)


def check_reason(reason: str) -> str:
    """Return the reason stripped, or raise if it is empty or not one line."""
    cleaned = reason.strip()
    if not cleaned or "\n" in cleaned or "\r" in cleaned:
        raise RuleViolation("reason must be one non-empty line", status=422)
    return cleaned


def check_transition(
    current: str,
    target: str,
    *,
    resolution: str | None,
    steps: Iterable[str] = (),
) -> None:
    """Raise unless `current -> target` is allowed (resolution only and always for resolved)."""
    if current in CLOSED:
        raise RuleViolation(f"case is {current}; a closed case cannot change status")
    if target not in _TRANSITIONS.get(current, frozenset()):
        raise RuleViolation(f"cannot move a case from {current} to {target}")
    if target == "resolved" and resolution is None:
        raise RuleViolation("resolving a case needs a resolution", status=422)
    if target != "resolved" and resolution is not None:
        raise RuleViolation("only a resolved case has a resolution", status=422)
    if target == "evicted" and "eviction_executed" not in set(steps):
        raise RuleViolation("evicted needs the legal step eviction_executed recorded first")


def consent_covers(
    consents: Iterable[ConsentView], recipient: str, *, today: date, now: datetime
) -> bool:
    """Tell whether a valid, unwithdrawn, unexpired consent covers `recipient`."""
    for c in consents:
        if recipient not in c.scope or c.given_on > today:
            continue
        if c.expires_on is not None and today > c.expires_on:
            continue
        if c.withdrawn_at is not None and c.withdrawn_at <= now:
            continue
        return True
    return False


def recovery_start(steps: Iterable[StepView]) -> date | None:
    """Return the start of the JB 12:44 recovery period: the later of service and notice."""
    served = [s.step_date for s in steps if s.step == "recovery_notice_served"]
    noticed = [s.step_date for s in steps if s.step == "social_services_notice_sent"]
    if not served or not noticed:
        return None
    return max(max(served), max(noticed))


def check_referral(
    recipient: str,
    notice: str | None,
    *,
    amount_owed_ore: int | None,
    consents: Sequence[ConsentView],
    steps: Sequence[StepView],
    arrears_cleared_on: date | None,
    today: date,
    now: datetime,
) -> ReferralDecision:
    """Decide whether a referral may be recorded; raise RuleViolation with the reason if not."""
    if notice is not None:
        return _check_notice(recipient, notice, amount_owed_ore)
    if recipient == "kronofogden":
        return _check_kronofogden(steps, arrears_cleared_on, today)
    if not consent_covers(consents, recipient, today=today, now=now):
        raise RuleViolation(
            f"a referral to {recipient} needs a valid consent covering {recipient} "
            "(none given, expired or withdrawn); only the statutory notices may be sent "
            "without consent",
            status=403,
        )
    return ReferralDecision(statutory=False, legal_basis="consent (samtyckesblankett)")


def _check_notice(recipient: str, notice: str, amount_owed_ore: int | None) -> ReferralDecision:
    if recipient != "social_services":
        raise RuleViolation("statutory notices go to social_services", status=422)
    if notice == "termination_notice" and (amount_owed_ore is None or amount_owed_ore <= 0):
        raise RuleViolation(
            "a termination notice under JB 12:44 must state the amount owed (amount_owed_ore > 0)",
            status=422,
        )
    return ReferralDecision(statutory=True, legal_basis=NOTICE_BASIS[notice])


def _check_kronofogden(
    steps: Sequence[StepView], arrears_cleared_on: date | None, today: date
) -> ReferralDecision:
    recorded = {s.step for s in steps}
    missing = [s for s in KRONOFOGDEN_STEPS if s not in recorded]
    start = recovery_start(steps)
    if start is not None:
        ends = start + RECOVERY_PERIOD
        if today <= ends:
            missing.append(f"recovery_period_ended (runs until {ends.isoformat()})")
        elif arrears_cleared_on is not None and arrears_cleared_on <= ends:
            missing.append("recovery_period_ended_unpaid (arrears were cleared in time)")
    else:
        missing.append("recovery_period_ended")
    if missing:
        raise RuleViolation(
            "an application to Kronofogden needs every step of JB 12:44 first",
            detail={"reason": "missing steps", "missing": missing},
        )
    return ReferralDecision(
        statutory=False, legal_basis="JB 12:44; recovery period ended unpaid (handräckning)"
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: the verified claims of the bearer token."""

    sub: str
    role: Role
    org: str | None
    municipality: str | None


def role_allowed(role: str, allowed: Iterable[str]) -> bool:
    """Tell whether `role` may use a route at all."""
    return role in set(allowed)


def case_sections(
    principal: Principal,
    *,
    org_id: str,
    municipality_code: str | None,
    consents: Sequence[ConsentView],
    has_statutory_notice: bool,
    today: date,
    now: datetime,
) -> frozenset[Section]:
    """Return what of one case `principal` may see (empty: no access at all)."""
    role = principal.role
    if role == "admin":
        return ALL_SECTIONS
    if role in ("landlord_staff", "bosocial"):
        return ALL_SECTIONS if principal.org == org_id else frozenset()
    if role == "budget_debt_advice":
        covered = consent_covers(consents, "budget_debt_advice", today=today, now=now)
        return ALL_SECTIONS if covered else frozenset()
    if role == "social_services":
        if municipality_code is None or principal.municipality != municipality_code:
            return frozenset()
        if consent_covers(consents, "social_services", today=today, now=now):
            return ALL_SECTIONS
        return STATUTORY_SECTIONS if has_statutory_notice else frozenset()
    return frozenset()


TIMELINE_SECTION: dict[str, Section] = {
    "signal": "timeline",
    "sms": "timeline",
    "task": "timeline",
    "lease": "timeline",
    "note": "notes",
    "meeting": "meetings",
    "plan": "payment_plans",
    "referral": "referrals",
    "legal_step": "legal_steps",
    "status": "case",
    "opened": "case",
    "assigned": "case",
    "consent": "consents",
}


def timeline_visible(kind: str, statutory: bool | None, sections: frozenset[Section]) -> bool:
    """Tell whether a timeline entry of `kind` is visible with `sections`."""
    section = TIMELINE_SECTION.get(kind, "timeline")
    if section not in sections:
        return False
    if sections == STATUTORY_SECTIONS:
        # A statutory notice covers the notices and the legal steps, nothing staff wrote.
        return kind == "legal_step" or (kind == "referral" and statutory is True)
    return True


def purge_due(closed_at: datetime | None, now: datetime, retention_days: int) -> bool:
    """Tell whether a closed case's personal data is past its retention."""
    return closed_at is not None and now - closed_at >= timedelta(days=retention_days)
