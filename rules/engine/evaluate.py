"""Stage evaluation: which signals are due for a lease at `now`, and its future deadlines."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

from rules.engine.common import (
    Evaluation,
    add_deadline,
    ladder_schedule,
    midnight,
    sid,
    stage_date,
)
from rules.engine.ledger import ChargeStatus, apply_entries
from rules.engine.reasons import reasons
from rules.engine.risk import lease_risk
from rules.engine.settlement import release_day, retracted, retractions, settlement_inputs
from rules.engine.state import Deadline, LeaseState, SignalDraft, Watermark
from rules.engine.tracks import (
    complaint_signals,
    plan_signals,
    plan_status,
    recovery_signals,
    recovery_window,
)
from rules.policy import Policy, Stage
from shared.clock import local_date
from shared.format import format_date

__all__ = ["Evaluation", "evaluate", "plan_status", "quiet", "recovery_window", "stage_date"]


@lru_cache(maxsize=64)
def _local_date(now: datetime) -> date:
    # a batch or sweep chunk evaluates every lease at the same instant
    return local_date(now)


def evaluate(
    state: LeaseState,
    policy: Policy,
    now: datetime,
    emitted: frozenset[str],
    watermark: Watermark | None = None,
) -> Evaluation:
    """Decide which signals are due for `state` at `now` (those in `emitted` are skipped).

    `watermark`: the organisation's ledger watermark, if it sends one (see settlement.py).
    """
    today = _local_date(now)
    ledger = apply_entries(state.entries, today)
    plans = plan_status(state, policy, today) if state.plans else {}
    broken = sum(1 for p in plans.values() if p["status"] == "breached") if plans else 0
    overdue = ledger.overdue(today)
    arrears = sum(c.open_ore for c in overdue) if overdue else 0
    late_12m = ledger.late_payments(today)
    ev = Evaluation(
        today=today,
        ledger=ledger,
        risk=lease_risk(state, policy, today, broken, arrears, late_12m, overdue),
        plans=plans,
        arrears_ore=arrears,
        late_payments_12m=late_12m,
    )
    ev.retractions = retractions(state, policy, ev, emitted, now)
    out: list[SignalDraft] = []
    # after the lease ended there is no home left to save: only arrears_cleared and plans
    active = state.ended_on is None or today <= state.ended_on
    if active:
        out += _ladder(state, policy, ev, emitted, watermark)
    if emitted:  # else no late signal to clear
        out += _arrears_cleared(state, policy, ev, emitted)
    # the tracks below find nothing (and set nothing) for a lease without their facts
    if active and state.legal_steps:
        out += recovery_signals(state, policy, ev, emitted)
    if state.plans:
        out += plan_signals(state, policy, ev, watermark, emitted)
    if active:
        if state.complaints or state.warnings:
            out += complaint_signals(state, policy, today, emitted)
        out += _high_risk(state, policy, ev, emitted)
    ev.signals = [s for s in out if s.signal_id not in emitted] if emitted else out
    if ev.deadlines:
        ev.deadlines = [d for d in ev.deadlines if d.due_on > today]
    return ev


def quiet(state: LeaseState, policy: Policy, emitted: frozenset[str]) -> bool:
    """Tell whether `evaluate` would find nothing for `state`: no signal, no retraction,
    no deadline, whatever `now` and the watermark (so the caller may skip it).

    True for a lease without ledger entries, complaints, warnings, legal steps or plans
    and with nothing emitted: a lease registered but not charged yet. Every track then
    returns before its first stage (no open charge, no facts; only an emitted signal can be
    retracted or cleared), and every risk factor is 0, so the score is 0 and under any
    high-risk threshold (the policy's is at least 1).
    """
    return (
        not state.entries
        and not emitted
        and not state.complaints
        and not state.warnings
        and not state.legal_steps
        and not state.plans
        and policy.risk.high_risk_threshold > 0
    )


def _ladder(
    state: LeaseState,
    policy: Policy,
    ev: Evaluation,
    emitted: frozenset[str],
    watermark: Watermark | None,
) -> list[SignalDraft]:
    today = ev.today
    open_charges = [c for c in ev.ledger.charges if c.open_ore > 0]
    if not open_charges:
        return []
    arrears, late_12m = ev.arrears_ore, ev.late_payments_12m
    deadlines = ev.deadlines
    out = []
    for charge in open_charges:
        unpaid = -1  # counted when a stage first asks
        due = today > charge.due_date
        for stage, on, at in ladder_schedule(policy, charge.due_date):
            if due and stage.offset_days < 0:
                continue  # a pre-due stage is moot once the charge is due
            if emitted and sid(state, charge.period, stage.name) in emitted:
                continue
            if on > today:
                deadlines.append(Deadline(stage.signal, charge.period, stage.name, on, at))
                continue
            # a reminder before the due date is no alarm: only late stages wait
            release = (
                release_day(on, charge.known_at, policy, watermark) if stage.offset_days > 0 else on
            )
            if release is None or release > today:
                _hold(ev, stage, charge, on, release, watermark is not None)
                continue
            if unpaid < 0:
                unpaid = sum(1 for c in open_charges if c.due_date <= charge.due_date)
            owed = charge.open_ore if stage.offset_days < 0 else arrears
            if (
                owed >= stage.min_arrears_ore
                and unpaid >= stage.min_unpaid_charges
                and ev.risk.score >= stage.min_risk_score
                and late_12m >= stage.min_late_payments_12m
            ):
                signal = _ladder_signal(state, stage, charge, on, arrears, today, late_12m)
                if stage.offset_days > 0:
                    signal.inputs.update(settlement_inputs(charge, on, policy, watermark))
                out.append(signal)
    return out


def _hold(
    ev: Evaluation,
    stage: Stage,
    charge: ChargeStatus,
    on: date,
    release: date | None,
    by_watermark: bool,
) -> None:
    """Keep a due stage waiting for the ledger to be complete; look again tomorrow, or on
    `release` if that is sooner.

    Daily, whatever holds it: the lease stays among the deadlines an arriving watermark
    re-evaluates at once (advance_watermark looks two days ahead). That includes a stage
    held by the settlement lag: the organisation's first watermark may come before the
    lag's day (which a weekend, a holiday or a charge sent late puts days away).
    """
    tomorrow = ev.today + timedelta(days=1)
    again = min(release or tomorrow, tomorrow)
    add_deadline(ev, stage.signal, charge.period, stage.name, again)
    ev.held.append(
        {
            "stage": stage.name,
            "period": charge.period,
            "stage_date": on,
            "waiting_for": "watermark" if by_watermark else "settlement_lag",
            "release_on": release,
        }
    )


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
        due_date=format_date(charge.due_date),
        amount_ore=charge.open_ore,
        days_late=days_late,
    )
    return SignalDraft(
        signal_id=sid(state, charge.period, stage.name),
        signal=stage.signal,
        rule=f"ladder.{stage.name}",
        occurred_at=midnight(on),
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
    if ev.arrears_ore > 0 or not emitted:
        return []  # nothing emitted: no late signal to clear
    late_names = [s.name for s in policy.ladder if s.offset_days > 0]
    wrong = retracted(emitted, ev.retractions)
    # a late signal that was withdrawn never called for action: nothing to clear
    cleared = [
        c
        for c in ev.ledger.charges
        if c.open_ore == 0
        and any((i := sid(state, c.period, n)) in emitted and i not in wrong for n in late_names)
    ]
    if not cleared:
        return []
    last = max(cleared, key=lambda c: c.period)
    signal_id = sid(state, last.period, "arrears_cleared")
    if signal_id in emitted:
        return []  # said already: build no reasons for a draft `evaluate` would drop
    paid_on = max(c.paid_on or ev.today for c in cleared)
    sv, en = reasons("arrears_cleared")
    return [
        SignalDraft(
            signal_id=signal_id,
            signal="arrears_cleared",
            rule="arrears_cleared",
            occurred_at=midnight(paid_on),
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


def _high_risk(
    state: LeaseState, policy: Policy, ev: Evaluation, emitted: frozenset[str]
) -> list[SignalDraft]:
    # while a late stage waits for payments to arrive, arrears may be a ledger not yet complete
    if ev.risk.score < policy.risk.high_risk_threshold or ev.held:
        return []
    month = ev.today.strftime("%Y-%m")
    signal_id = sid(state, month, "high_risk")
    if signal_id in emitted:
        return []
    sv, en = reasons("high_risk", score=ev.risk.score)
    return [
        SignalDraft(
            signal_id=signal_id,
            signal="high_risk",
            rule="risk.high_risk_threshold",
            occurred_at=midnight(ev.today),
            reason_sv=sv,
            reason_en=en,
            period=month,
            arrears_ore=ev.arrears_ore,
            inputs={"score": ev.risk.score, "threshold": policy.risk.high_risk_threshold},
        )
    ]
