"""Applying consumed events: signals open cases and fill timelines; leases give attributes."""

from __future__ import annotations

from datetime import datetime

from services.cases import engine
from services.cases.actions import settle
from services.cases.actions.common import Emit, Row, case_id_for, event
from services.cases.store import CasesStore
from shared.events import (
    CaseOpened,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    NotificationStatusChanged,
    SignalRaised,
    TaskChanged,
)


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
        await settle.reopen_for_new_arrears(store, case, signal, now=now, emit=emit)
    summary, extra = signal.reason_en[:300], Row()
    if signal.signal == "arrears_cleared":
        summary, extra = await settle.arrears_cleared(store, case, signal, now=now, emit=emit)
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
        summary=summary,
        data={
            "rule": signal.rule,
            "policy_version": signal.policy_version,
            "period": signal.period,
            "days_late": signal.days_late,
            "arrears_ore": signal.arrears_ore,
            "risk_score": signal.risk.score,
            "reason_sv": signal.reason_sv,
            **extra,
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
    await emit(event(data, f"{case_id}:opened", now))
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
