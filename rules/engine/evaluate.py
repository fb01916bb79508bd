"""Stage evaluation: which signals are due for a lease at `now`, and its future deadlines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from rules.engine.ledger import ChargeStatus, Ledger, apply_entries
from rules.engine.reasons import kronor, reasons
from rules.engine.risk import Risk, factor_values, score
from rules.engine.state import Deadline, LeaseState, SignalDraft
from rules.policy import Policy, Stage
from shared.calendar import add_working_days, is_working_day
from shared.clock import local_date, local_midnight


@dataclass(slots=True)
class Evaluation:
    """What the engine concluded about a lease at one instant."""

    today: date
    ledger: Ledger
    risk: Risk
    signals: list[SignalDraft] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None


def stage_date(due: date, stage: Stage) -> date:
    """Return the day a stage is reached for a charge due on `due`."""
    return _offset(due, stage.offset_days, stage.unit)


@lru_cache(maxsize=4096)
def _offset(due: date, offset: int, unit: str) -> date:
    if unit == "calendar":
        return due + timedelta(days=offset)
    if offset >= 0:
        return add_working_days(due, offset)
    day, left = due, -offset
    while left:
        day -= timedelta(days=1)
        left -= is_working_day(day)
    return day


def evaluate(
    state: LeaseState, policy: Policy, now: datetime, emitted: frozenset[str]
) -> Evaluation:
    """Decide which signals are due for `state` at `now` (those in `emitted` are skipped)."""
    today = local_date(now)
    ledger = apply_entries(state.entries, today)
    plans = plan_status(state, policy, today)
    broken = sum(1 for p in plans.values() if p["status"] == "breached")
    risk = score(factor_values(state, ledger, today, broken), policy)
    ev = Evaluation(today=today, ledger=ledger, risk=risk, plans=plans)
    out: list[SignalDraft] = []
    # after the lease ended there is no home left to save: only arrears_cleared and plans
    active = state.ended_on is None or today <= state.ended_on
    if active:
        out += _ladder(state, policy, ev, emitted)
    out += _arrears_cleared(state, policy, ev, emitted)
    if active:
        out += _recovery(state, policy, ev, emitted)
    out += _plans(state, ev)
    if active:
        out += _complaints(state, policy, today)
        out += _high_risk(state, policy, ev)
    ev.signals = [s for s in out if s.signal_id not in emitted]
    ev.deadlines = [d for d in ev.deadlines if d.due_on > today]
    return ev


def _sid(state: LeaseState, ref: str, stage: str) -> str:
    return f"{state.lease_id}:{ref}:{stage}"


@lru_cache(maxsize=4096)
def _midnight(day: date) -> datetime:
    return local_midnight(day)


def _deadline(ev: Evaluation, kind: str, ref: str, stage: str, due_on: date) -> None:
    ev.deadlines.append(Deadline(kind, ref, stage, due_on, _midnight(due_on)))


def _ladder(
    state: LeaseState, policy: Policy, ev: Evaluation, emitted: frozenset[str]
) -> list[SignalDraft]:
    today, ledger = ev.today, ev.ledger
    arrears = ledger.arrears_ore(today)
    late_12m = ledger.late_payments(today)
    out = []
    for charge in (c for c in ledger.charges if c.open_ore > 0):
        unpaid = sum(1 for c in ledger.charges if c.open_ore > 0 and c.due_date <= charge.due_date)
        for stage in policy.ladder:
            sid = _sid(state, charge.period, stage.name)
            if sid in emitted:
                continue
            on = stage_date(charge.due_date, stage)
            if stage.offset_days < 0 and today > charge.due_date:
                continue  # a pre-due stage is moot once the charge is due
            if on > today:
                _deadline(ev, stage.signal, charge.period, stage.name, on)
                continue
            owed = charge.open_ore if stage.offset_days < 0 else arrears
            if (
                owed >= stage.min_arrears_ore
                and unpaid >= stage.min_unpaid_charges
                and ev.risk.score >= stage.min_risk_score
                and late_12m >= stage.min_late_payments_12m
            ):
                out.append(_ladder_signal(state, stage, charge, on, arrears, today, late_12m))
    return out


def _ladder_signal(
    state: LeaseState,
    stage: Stage,
    charge: ChargeStatus,
    on: date,
    arrears: int,
    today: date,
    late_12m: int,
) -> SignalDraft:
    days_late = max(0, (on - charge.due_date).days)
    sv, en = reasons(
        stage.signal,
        period=charge.period,
        due_date=charge.due_date.isoformat(),
        amount_kr=kronor(charge.open_ore),
        days_late=days_late,
    )
    return SignalDraft(
        signal_id=_sid(state, charge.period, stage.name),
        signal=stage.signal,
        rule=f"ladder.{stage.name}",
        occurred_at=_midnight(on),
        reason_sv=sv,
        reason_en=en,
        period=charge.period,
        due_date=charge.due_date,
        days_late=days_late,
        arrears_ore=arrears,
        inputs={
            "invoice_id": charge.invoice_id,
            "charge_amount_ore": charge.amount_ore,
            "open_ore": charge.open_ore,
            "stage_date": on.isoformat(),
            "offset_days": stage.offset_days,
            "unit": stage.unit,
            "evaluated_on": today.isoformat(),
            "late_payments_12m": late_12m,
            "legal_basis": stage.legal_basis,
        },
    )


def _arrears_cleared(
    state: LeaseState, policy: Policy, ev: Evaluation, emitted: frozenset[str]
) -> list[SignalDraft]:
    if ev.ledger.arrears_ore(ev.today) > 0:
        return []
    late_names = [s.name for s in policy.ladder if s.offset_days > 0]
    cleared = [
        c
        for c in ev.ledger.charges
        if c.open_ore == 0 and any(_sid(state, c.period, n) in emitted for n in late_names)
    ]
    if not cleared:
        return []
    last = max(cleared, key=lambda c: c.period)
    paid_on = max(c.paid_on or ev.today for c in cleared)
    sv, en = reasons("arrears_cleared")
    return [
        SignalDraft(
            signal_id=_sid(state, last.period, "arrears_cleared"),
            signal="arrears_cleared",
            rule="arrears_cleared",
            occurred_at=local_midnight(paid_on),
            reason_sv=sv,
            reason_en=en,
            period=last.period,
            due_date=last.due_date,
            days_late=last.days_late(ev.today),
            arrears_ore=0,
            inputs={
                "periods": sorted(c.period for c in cleared),
                "paid_on": paid_on.isoformat(),
                "balance_ore": ev.ledger.balance_ore,
            },
        )
    ]


def recovery_window(state: LeaseState, policy: Policy) -> dict[str, Any] | None:
    """Return the JB 12:44 recovery period of the latest termination (start None: not yet)."""
    steps = sorted(state.legal_steps, key=lambda s: (s.step_date, s.step_id))
    terminations = [s for s in steps if s.step == "termination_sent"]
    if not terminations:
        return None
    term = terminations[-1]
    after = [s for s in steps if s.step_date >= term.step_date]
    served = [s.step_date for s in after if s.step == "recovery_notice_served"]
    notified = [s.step_date for s in after if s.step == "social_services_notice_sent"]
    missing = [
        name
        for name, dates in (
            ("recovery_notice_served", served),
            ("social_services_notice_sent", notified),
        )
        if not dates
    ]
    # JB 12:44: the period runs from the LATER notice, so it has not started until both exist
    start = max(served[-1:] + notified[-1:]) if not missing else None
    end = start + timedelta(days=policy.recovery.length_days) if start else None
    return {
        "termination_step_id": term.step_id,
        "termination_date": term.step_date,
        "service_date": served[-1] if served else None,
        "social_services_notice_date": notified[-1] if notified else None,
        "start": start,
        "end": end,
        "missing_notices": missing,
    }


def _recovery(
    state: LeaseState, policy: Policy, ev: Evaluation, emitted: frozenset[str]
) -> list[SignalDraft]:
    window = recovery_window(state, policy)
    ev.recovery = window
    if window is None or window["start"] is None:
        return []
    ref, start, end = window["termination_step_id"], window["start"], window["end"]
    rp = policy.recovery
    milestones: list[tuple[str, str, date]] = [
        ("recovery_period_started", "recovery_period_started", start)
    ]
    week = 1
    while start + timedelta(days=week * rp.reminder_every_days) < end:
        on = start + timedelta(days=week * rp.reminder_every_days)
        milestones.append((f"recovery_period_reminder_w{week}", "recovery_period_reminder", on))
        week += 1
    milestones.append(
        (
            "recovery_period_ending",
            "recovery_period_ending",
            end - timedelta(days=rp.ending_warning_days),
        )
    )
    milestones.append(("recovery_period_ended", "recovery_period_ended", end + timedelta(days=1)))
    milestones.append(("enforcement_possible", "enforcement_possible", end + timedelta(days=1)))
    owed = ev.ledger.arrears_ore(ev.today)
    out = []
    for stage, signal, on in milestones:
        sid = _sid(state, ref, stage)
        if sid in emitted:
            continue
        if on > ev.today:
            _deadline(ev, signal, ref, stage, on)
        elif owed > 0:
            out.append(_recovery_signal(state, stage, signal, on, owed, window, policy))
    return out


def _recovery_signal(
    state: LeaseState,
    stage: str,
    signal: str,
    on: date,
    owed: int,
    window: dict[str, Any],
    policy: Policy,
) -> SignalDraft:
    week = int(stage.rsplit("_w", 1)[1]) if stage.startswith("recovery_period_reminder_w") else 0
    sv, en = reasons(
        signal,
        start=window["start"].isoformat(),
        end=window["end"].isoformat(),
        week=week,
        amount_kr=kronor(owed),
    )
    inputs = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in window.items()}
    inputs["legal_basis"] = policy.recovery.legal_basis
    return SignalDraft(
        signal_id=_sid(state, window["termination_step_id"], stage),
        signal=signal,
        rule=f"recovery.{stage}",
        occurred_at=_midnight(on),
        reason_sv=sv,
        reason_en=en,
        arrears_ore=owed,
        inputs=inputs,
    )


def plan_status(state: LeaseState, policy: Policy, today: date) -> dict[str, dict[str, Any]]:
    """Track each payment plan installment by installment: kept, breached or running."""
    money = [e for e in state.entries if e.kind in ("payment", "credit") and e.booked_on <= today]
    out: dict[str, dict[str, Any]] = {}
    for plan in state.plans:
        required, status, breach, next_check = 0, "running", None, None
        for index, (due, amount) in enumerate(sorted(plan.installments)):
            required += amount
            check_on = due + timedelta(days=policy.plans.grace_days + 1)
            if check_on > today:
                next_check = check_on
                break
            paid = sum(e.amount_ore for e in money if plan.agreed_on <= e.booked_on < check_on)
            if paid < required:
                status, breach = (
                    "breached",
                    {
                        "index": index,
                        "due_date": due,
                        "check_on": check_on,
                        "paid_ore": paid,
                        "required_ore": required,
                    },
                )
                break
        else:
            status = "kept"
        out[plan.plan_id] = {
            "status": status,
            "breach": breach,
            "agreed_on": plan.agreed_on,
            "next_check_on": next_check,
        }
    return out


def _plans(state: LeaseState, ev: Evaluation) -> list[SignalDraft]:
    out = []
    for plan in state.plans:
        info = ev.plans[plan.plan_id]
        if info["status"] == "running" and info["next_check_on"] is not None:
            _deadline(
                ev, "plan_breached", plan.plan_id, "plan_installment_check", info["next_check_on"]
            )
        breach = info["breach"]
        if breach is None:
            continue
        sv, en = reasons("plan_breached", due_date=breach["due_date"].isoformat())
        out.append(
            SignalDraft(
                signal_id=_sid(state, plan.plan_id, "plan_breached"),
                signal="plan_breached",
                rule="plans.installment_missed",
                occurred_at=local_midnight(breach["check_on"]),
                reason_sv=sv,
                reason_en=en,
                due_date=breach["due_date"],
                arrears_ore=ev.ledger.arrears_ore(ev.today),
                inputs={k: (v.isoformat() if isinstance(v, date) else v) for k, v in breach.items()}
                | {"plan_id": plan.plan_id},
            )
        )
    return out


def _complaints(state: LeaseState, policy: Policy, today: date) -> list[SignalDraft]:
    out = []
    for rule in policy.complaint_patterns:
        hits = sorted(
            (
                c
                for c in state.complaints
                if c.category in rule.categories
                and c.resolution != "unfounded"
                and c.occurred_on <= today
            ),
            key=lambda c: (c.occurred_on, c.complaint_id),
        )
        for i in range(rule.count - 1, len(hits)):
            first, last = hits[i - rule.count + 1], hits[i]
            if (last.occurred_on - first.occurred_on).days > rule.window_days:
                continue
            sv, en = reasons(
                rule.signal, count=rule.count, category=last.category, window_days=rule.window_days
            )
            out.append(
                SignalDraft(
                    signal_id=_sid(state, last.complaint_id, rule.name),
                    signal=rule.signal,
                    rule=f"complaints.{rule.name}",
                    occurred_at=local_midnight(last.occurred_on),
                    reason_sv=sv,
                    reason_en=en,
                    inputs={
                        "complaint_ids": [c.complaint_id for c in hits[i - rule.count + 1 : i + 1]],
                        "first_on": first.occurred_on.isoformat(),
                        "last_on": last.occurred_on.isoformat(),
                        "window_days": rule.window_days,
                    },
                )
            )
    for wrule in policy.warning_rules:
        for w in state.warnings:
            if w.category not in wrule.categories or w.issued_on > today:
                continue
            sv, en = reasons(wrule.signal, issued_on=w.issued_on.isoformat())
            out.append(
                SignalDraft(
                    signal_id=_sid(state, w.warning_id, wrule.name),
                    signal=wrule.signal,
                    rule=f"warnings.{wrule.name}",
                    occurred_at=local_midnight(w.issued_on),
                    reason_sv=sv,
                    reason_en=en,
                    inputs={
                        "warning_id": w.warning_id,
                        "category": w.category,
                        "issued_on": w.issued_on.isoformat(),
                        "legal_basis": wrule.legal_basis,
                    },
                )
            )
    return out


def _high_risk(state: LeaseState, policy: Policy, ev: Evaluation) -> list[SignalDraft]:
    if ev.risk.score < policy.risk.high_risk_threshold:
        return []
    month = ev.today.strftime("%Y-%m")
    sv, en = reasons("high_risk", score=ev.risk.score)
    return [
        SignalDraft(
            signal_id=_sid(state, month, "high_risk"),
            signal="high_risk",
            rule="risk.high_risk_threshold",
            occurred_at=local_midnight(ev.today),
            reason_sv=sv,
            reason_en=en,
            period=month,
            arrears_ore=ev.ledger.arrears_ore(ev.today),
            inputs={"score": ev.risk.score, "threshold": policy.risk.high_risk_threshold},
        )
    ]
