"""The legal and social tracks: JB 12:44 recovery period, payment plans, complaints."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rules.engine.common import Evaluation, add_deadline, midnight, sid
from rules.engine.reasons import reasons
from rules.engine.settlement import release_day
from rules.engine.state import LeaseState, SignalDraft, Watermark
from rules.policy import Policy
from shared.calendar import statutory_period_end
from shared.format import format_date

END_RULE = "lag (1930:173) 2 §: a last day that is not a vardag moves to the next vardag"


def recovery_window(state: LeaseState, policy: Policy) -> dict[str, Any] | None:
    """Return the JB 12:44 recovery period of the latest termination (start None: not yet)."""
    if not state.legal_steps:
        return None
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
    # lag (1930:173) 2 §: a last day on a Saturday, Sunday or holiday moves to the next vardag
    end = (
        statutory_period_end(start + timedelta(days=policy.recovery.length_days)) if start else None
    )
    return {
        "termination_step_id": term.step_id,
        "termination_date": term.step_date,
        "service_date": served[-1] if served else None,
        "social_services_notice_date": notified[-1] if notified else None,
        "start": start,
        "end": end,
        "missing_notices": missing,
        "end_rule": END_RULE,
    }


def recovery_signals(
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
    owed = ev.arrears_ore
    out = []
    for stage, signal, on in milestones:
        signal_id = sid(state, ref, stage)
        if signal_id in emitted:
            continue
        if on > ev.today:
            add_deadline(ev, signal, ref, stage, on)
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
        start=format_date(window["start"]),
        end=format_date(window["end"]),
        week=week,
        amount_ore=owed,
    )
    inputs = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in window.items()}
    inputs["legal_basis"] = policy.recovery.legal_basis
    return SignalDraft(
        signal_id=sid(state, window["termination_step_id"], stage),
        signal=signal,
        rule=f"recovery.{stage}",
        occurred_at=midnight(on),
        reason_sv=sv,
        reason_en=en,
        arrears_ore=owed,
        inputs=inputs,
    )


def plan_status(state: LeaseState, policy: Policy, today: date) -> dict[str, dict[str, Any]]:
    """Track each payment plan installment by installment: kept, breached or running."""
    if not state.plans:
        return {}
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


def plan_signals(
    state: LeaseState,
    policy: Policy,
    ev: Evaluation,
    watermark: Watermark | None,
    emitted: frozenset[str] = frozenset(),
) -> list[SignalDraft]:
    """Plan breaches to raise (none already in `emitted`); deadlines for the running ones."""
    out = []
    for plan in state.plans:
        info = ev.plans[plan.plan_id]
        if info["status"] == "running" and info["next_check_on"] is not None:
            add_deadline(
                ev, "plan_breached", plan.plan_id, "plan_installment_check", info["next_check_on"]
            )
        breach = info["breach"]
        if breach is None:
            continue
        # the installment's payment may still be on its way, like rent (settlement.py)
        release = release_day(breach["check_on"], None, policy, watermark)
        if release is None or release > ev.today:
            again = release or ev.today + timedelta(days=1)
            add_deadline(ev, "plan_breached", plan.plan_id, "plan_installment_check", again)
            continue
        signal_id = sid(state, plan.plan_id, "plan_breached")
        if signal_id in emitted:
            continue
        sv, en = reasons("plan_breached", due_date=breach["due_date"].isoformat())
        out.append(
            SignalDraft(
                signal_id=signal_id,
                signal="plan_breached",
                rule="plans.installment_missed",
                occurred_at=midnight(breach["check_on"]),
                reason_sv=sv,
                reason_en=en,
                due_date=breach["due_date"],
                arrears_ore=ev.arrears_ore,
                inputs={k: (v.isoformat() if isinstance(v, date) else v) for k, v in breach.items()}
                | {"plan_id": plan.plan_id},
            )
        )
    return out


def complaint_signals(
    state: LeaseState, policy: Policy, today: date, emitted: frozenset[str] = frozenset()
) -> list[SignalDraft]:
    """Complaint patterns and warnings to raise (none already in `emitted`)."""
    if not state.complaints and not state.warnings:
        return []
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
            signal_id = sid(state, last.complaint_id, rule.name)
            if signal_id in emitted:
                continue
            sv, en = reasons(
                rule.signal, count=rule.count, category=last.category, window_days=rule.window_days
            )
            out.append(
                SignalDraft(
                    signal_id=signal_id,
                    signal=rule.signal,
                    rule=f"complaints.{rule.name}",
                    occurred_at=midnight(last.occurred_on),
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
            if (warning_id := sid(state, w.warning_id, wrule.name)) in emitted:
                continue
            sv, en = reasons(wrule.signal, issued_on=w.issued_on.isoformat())
            out.append(
                SignalDraft(
                    signal_id=warning_id,
                    signal=wrule.signal,
                    rule=f"warnings.{wrule.name}",
                    occurred_at=midnight(w.issued_on),
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
