"""Signals that settle a case: arrears paid (review pending) and retractions (raised in error)."""

from __future__ import annotations

from datetime import datetime

import structlog

from services.cases import engine
from services.cases.actions.common import Emit, Row
from services.cases.actions.records import change_status
from services.cases.store import CasesStore
from services.cases.store.signals import mark_retracted, signal_views
from shared.events import SignalRaised, SignalRetracted
from shared.format import format_date, format_sek

log = structlog.get_logger(__name__)
SYSTEM = "bokvar"


async def _system_change(
    store: CasesStore,
    case: Row,
    *,
    status: str,
    resolution: str | None,
    reason: str,
    ref: str,
    now: datetime,
    emit: Emit,
) -> None:
    """Change a case's status on behalf of an event; `ref` makes the change's ids stable."""
    await change_status(
        store,
        case,
        status=status,
        resolution=resolution,
        reason=reason,
        actor=SYSTEM,
        now=now,
        emit=emit,
        change_id=f"S-{ref}",
    )


def payment_summary(signal: SignalRaised, cleared_ore: int | None) -> str:
    """Describe an arrears_cleared signal for the timeline: what was paid, for which periods."""
    periods = signal.inputs.get("periods") or ([signal.period] if signal.period else [])
    paid_on = signal.inputs.get("paid_on") or format_date(signal.occurred_at.date())
    amount = f"{format_sek(cleared_ore)} " if cleared_ore else ""
    return f"payment received: arrears {amount}for {', '.join(periods) or '-'} cleared on {paid_on}"


async def arrears_cleared(
    store: CasesStore, case: Row | None, signal: SignalRaised, *, now: datetime, emit: Emit
) -> tuple[str, Row]:
    """Return the timeline summary and data of a payment; put the case up for review."""
    views = await signal_views(store, case["id"]) if case is not None else []
    cleared = engine.arrears_before_payment(views)
    summary = payment_summary(signal, cleared)
    data: Row = {
        "periods": signal.inputs.get("periods"),
        "paid_on": signal.inputs.get("paid_on"),
        "cleared_ore": cleared,
        "balance_ore": signal.inputs.get("balance_ore"),
    }
    views.append(engine.SignalView(signal.signal_id, signal.signal))
    if case is not None and engine.review_after_payment(
        case["status"], case["trigger_signal_id"], views
    ):
        reason = f"arrears cleared ({summary}); review and close the case"
        await _system_change(
            store,
            case,
            status="pending_review",
            resolution=None,
            reason=reason,
            ref=signal.signal_id,
            now=now,
            emit=emit,
        )
        log.info("cases.pending_review", case_id=case["id"], signal=signal.signal)
    return summary, data


async def reopen_for_new_arrears(
    store: CasesStore, case: Row, signal: SignalRaised, *, now: datetime, emit: Emit
) -> None:
    """Take a case awaiting review back to `new` when rent is unpaid again."""
    if case["status"] != "pending_review" or signal.signal not in engine.ARREARS_SIGNALS:
        return
    reason = f"new signal {signal.signal} after the payment; no longer awaiting review"
    await _system_change(
        store,
        case,
        status="new",
        resolution=None,
        reason=reason,
        ref=signal.signal_id,
        now=now,
        emit=emit,
    )


async def on_retracted(
    store: CasesStore, retraction: SignalRetracted, *, now: datetime, emit: Emit
) -> None:
    """Put a retraction on the timeline; close a case the signal alone opened (raised in error)."""
    case_id = await mark_retracted(store, retraction.signal_id)
    case = await store.get(case_id) if case_id is not None else None
    if case is None:
        case = await store.open_case(retraction.lease_id)
    await store.add_entry(
        lease_id=retraction.lease_id,
        org_id=retraction.org_id,
        case_id=case["id"] if case else None,
        at=retraction.occurred_at,
        kind="signal",
        ref_id=retraction.retraction_id,
        name="signal_retracted",
        signal_id=retraction.signal_id,
        due_date=retraction.due_date,
        summary=f"{retraction.signal} retracted: {retraction.reason_en}"[:300],
        data={
            "signal": retraction.signal,
            "reason_code": retraction.reason_code,
            "rule": retraction.rule,
            "policy_version": retraction.policy_version,
            "period": retraction.period,
        },
    )
    if case is None:
        return
    views = await signal_views(store, case["id"])
    if engine.raised_in_error(
        case["status"], case["trigger_signal_id"], retraction.signal_id, views
    ):
        reason = f"raised in error: {retraction.signal} was retracted ({retraction.reason_code})"
        await _system_change(
            store,
            case,
            status="resolved",
            resolution="raised_in_error",
            reason=reason,
            ref=retraction.retraction_id,
            now=now,
            emit=emit,
        )
        log.info("cases.raised_in_error", case_id=case["id"], signal=retraction.signal)
