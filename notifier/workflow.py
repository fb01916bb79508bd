"""State changes of the notifier: engine decisions applied through the store, with events.

Every function runs inside the caller's transaction (consumer batch, request, or a
sender step) and stages a `notification.events` record for each state change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, cast
from zoneinfo import ZoneInfo

import structlog

from notifier import engine
from notifier.emit import notification_event, task_event
from notifier.metrics import TASKS_CREATED, TASKS_ESCALATED
from notifier.policy import Policy, WelcomeSms
from notifier.store import PENDING, NotifierStore
from notifier.variables import signal_variables
from shared.events import (
    EventData,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    SignalRaised,
    SignalRetracted,
    class_kind,
)

log = structlog.get_logger(__name__)
ANY_TENANT = "*"


@dataclass(frozen=True)
class Context:
    """What state changes need besides the store: the policy and the time zone."""

    policy: Policy
    tz: ZoneInfo
    # Teams already warned about having no lead (the warning comes once per team, not per task).
    teams_without_lead: set[str | None] = field(default_factory=set, compare=False, hash=False)


async def stage_notification(store: NotifierStore, row: Any, now: datetime) -> None:
    """Stage the event of a notification's new state."""
    event = notification_event(row, at=now)
    if event is not None:
        await store.stage([event])


async def queue_sms(
    store: NotifierStore,
    ctx: Context,
    *,
    notification_id: str,
    lease_id: str,
    org_id: str,
    recipient_kind: str,
    recipient_id: str,
    template: str,
    variables: dict[str, Any],
    now: datetime,
    signal: SignalRaised | None = None,
    task_id: str | None = None,
    due_at: datetime | None = None,
) -> bool:
    """Queue one SMS (deferred to the next allowed time for tenants); False if it exists."""
    due = due_at or now
    if recipient_kind == "tenant":
        due = engine.next_allowed_send(now, ctx.policy.quiet(org_id))
    values = {
        "id": notification_id,
        "lease_id": lease_id,
        "org_id": org_id,
        "recipient_kind": recipient_kind,
        "recipient_id": recipient_id,
        "signal_id": signal.signal_id if signal else None,
        "signal": signal.signal if signal else None,
        "task_id": task_id,
        "template": template,
        "variables": variables,
        "status": "queued" if due <= now else "deferred",
        "version": 1,
        "due_at": due,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    row = await store.create_notification(values)
    if row is None:
        return False
    await stage_notification(store, row, now)
    return True


def tenant_sms_id(signal_id: str, tenant_id: str) -> str:
    """The id of a signal's SMS to one tenant (or to any tenant, `*`)."""
    return f"{signal_id}:{tenant_id}"


def call_task_id(signal_id: str) -> str:
    """The id of the call task a signal opens."""
    return f"phone_call:{signal_id}"


async def prefetch_for_signals(
    store: NotifierStore, signals: list[SignalRaised], tenants: dict[str, set[str]]
) -> None:
    """Let a buffering store know which tenant SMS and call tasks `on_signal` may create for
    these signals do not exist yet (one query per table for a batch, not one per row);
    `tenants`: tenant ids per lease, as far as known (an id missed costs only its own
    statement)."""
    sms: list[str] = []
    calls: list[str] = []
    for sig in signals:
        if sig.signal == "arrears_cleared":
            continue
        sms += [tenant_sms_id(sig.signal_id, t) for t in tenants.get(sig.lease_id, ())]
        sms.append(tenant_sms_id(sig.signal_id, ANY_TENANT))
        calls.append(call_task_id(sig.signal_id))
    await store.prefetch_absent(sms, calls)


async def on_signal(store: NotifierStore, ctx: Context, sig: SignalRaised, now: datetime) -> None:
    """Turn a risk signal into queued SMS, tasks and alerts (or cancellations)."""
    if sig.signal == "arrears_cleared":
        await on_arrears_cleared(store, [sig], now)
        return
    if await store.retracted([sig.signal_id]):
        log.info("notifier.retracted_signal_ignored", signal=sig.signal, lease_id=sig.lease_id)
        return
    rule = ctx.policy.rule(sig.org_id, sig.signal)
    actions = engine.actions_for(ctx.policy, org_id=sig.org_id, signal=sig.signal)
    lease = await store.get_lease(sig.lease_id)
    if "sms_tenant" in actions and rule.template:
        tenants = list(lease.tenant_ids) if lease is not None and lease.tenant_ids else []
        for tenant_id in tenants or [ANY_TENANT]:
            await queue_sms(
                store,
                ctx,
                notification_id=tenant_sms_id(sig.signal_id, tenant_id),
                lease_id=sig.lease_id,
                org_id=sig.org_id,
                recipient_kind="tenant",
                recipient_id=tenant_id,
                template=rule.template,
                variables=signal_variables(sig),
                now=now,
                signal=sig,
            )
    if "call_task" in actions:
        await open_task(
            store,
            ctx,
            task_id=call_task_id(sig.signal_id),
            kind="phone_call",
            lease_id=sig.lease_id,
            org_id=sig.org_id,
            team=lease.team if lease is not None else None,
            signal_id=sig.signal_id,
            now=now,
            alert="staff_alert_sms" in actions,
        )
    log.info("notifier.signal_applied", signal=sig.signal, lease_id=sig.lease_id, actions=actions)


async def on_lease(
    store: NotifierStore,
    ctx: Context,
    data: LeaseRegistered | LeaseUpdated | LeaseEnded,
    now: datetime,
    *,
    event_time: datetime | None = None,
) -> bool:
    """Track a lease's team and tenants; welcome new tenants; stop contact when it ends.

    Return True when a registered lease gets no welcome because it started earlier
    (existing stock): the caller logs those once per batch, not once per lease.
    """
    kind = class_kind(data, _LEASE_KINDS)
    if kind == "ended":
        await store.end_lease(data.lease_id, now=now)
        await clear_leases(store, [data.lease_id], now=now, detail="lease_ended")
        return False
    data = cast("LeaseRegistered | LeaseUpdated", data)
    tenant_ids = [t.tenant_id for t in data.tenants]
    await store.upsert_lease(
        lease_id=data.lease_id, org_id=data.org_id, team=data.team, tenant_ids=tenant_ids, now=now
    )
    if tenant_ids and store.may_have_any_tenant(data.lease_id):
        for row in await store.pending_for_any_tenant(data.lease_id):
            await expand_any_tenant(store, row, tenant_ids, now=now)
    welcome = ctx.policy.welcome(data.org_id)
    if kind != "registered" or not welcome.enabled:
        return False
    if not _new_lease(cast(LeaseRegistered, data), ctx, event_time or now, welcome):
        return True
    for tenant_id in tenant_ids:
        await queue_sms(
            store,
            ctx,
            notification_id=f"welcome:{data.lease_id}:{tenant_id}",
            lease_id=data.lease_id,
            org_id=data.org_id,
            recipient_kind="tenant",
            recipient_id=tenant_id,
            template=welcome.template,
            variables={},
            now=now,
        )
    return False


# The class of each lease event `on_lease` handles (`class_kind`: one dict lookup, not an
# isinstance through ABCMeta per test).
_LEASE_KINDS: dict[type[EventData], str] = {
    LeaseEnded: "ended",
    LeaseRegistered: "registered",
    LeaseUpdated: "updated",
}
# The local day of the last event time `_new_lease` saw, by identity: a batch's lease
# events share one time object (`shared.events.decode`), and zone conversion costs ~1 µs.
_last_day: tuple[object, object, date] | None = None


def _new_lease(
    data: LeaseRegistered, ctx: Context, event_time: datetime, welcome: WelcomeSms
) -> bool:
    """Tell whether a lease registered at `event_time` is new (welcome) or existing stock
    (`welcome`: the org's setting)."""
    global _last_day
    last = _last_day
    if last is not None and last[0] is event_time and last[1] is ctx.tz:
        event_day = last[2]
    else:
        event_day = event_time.astimezone(ctx.tz).date()
        _last_day = (event_time, ctx.tz, event_day)
    window = welcome.max_days_since_start
    return engine.welcome_due(data.start_date, event_day=event_day, max_days_since_start=window)


async def expand_any_tenant(
    store: NotifierStore, row: Any, tenant_ids: list[str], *, now: datetime
) -> list[str]:
    """Replace a pending SMS for any tenant ("*") by one per tenant; return the new ids.

    The ids become `{signal id}:{tenant}`, the same a repeated signal would get once the
    tenants are known, so no tenant is texted twice for one signal.
    """
    base = row.id[: -len(ANY_TENANT)] if row.id.endswith(ANY_TENANT) else f"{row.id}:"
    created: list[str] = []
    for tenant_id in tenant_ids:
        values = {
            **row._asdict(),
            "id": base + tenant_id,
            "recipient_id": tenant_id,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        new = await store.create_notification(values)
        if new is not None:
            await stage_notification(store, new, now)
            created.append(new.id)
    cancelled = await store.update_notification(
        row.id, where_status=PENDING, status="cancelled", detail="sent per tenant", updated_at=now
    )
    if cancelled is not None:
        await stage_notification(store, cancelled, now)
    return created


async def on_arrears_cleared(
    store: NotifierStore, signals: Sequence[SignalRaised], now: datetime
) -> None:
    """`on_signal` for `arrears_cleared` signals, together (a consumer batch's run of them:
    a day's payments from late payers): mark their leases cleared, then cancel for all."""
    await store.mark_cleared([(sig.lease_id, sig.org_id) for sig in signals], at=now)
    leases = list(dict.fromkeys(sig.lease_id for sig in signals))
    await clear_leases(store, leases, now=now, detail="arrears_cleared")


async def clear_leases(
    store: NotifierStore, lease_ids: Sequence[str], *, now: datetime, detail: str
) -> None:
    """Cancel every pending tenant SMS and open call/letter task of the leases."""
    await _cancel(store, lease_ids, now=now, detail=detail)
    for lease_id in lease_ids:
        log.info("notifier.lease_cleared", lease_id=lease_id, reason=detail)


async def on_retracted(store: NotifierStore, data: SignalRetracted, now: datetime) -> None:
    """Withdraw what a retracted signal queued: pending SMS, open tasks and their alerts.

    An SMS already sent stays sent; the retraction is remembered so that nothing follows
    from it (no retry, no fallback task, no re-queue under another event id).
    """
    await store.record_retraction(
        {
            "signal_id": data.signal_id,
            "lease_id": data.lease_id,
            "signal": data.signal,
            "reason_code": data.reason_code,
            "retracted_at": now,
        }
    )
    await _cancel(
        store, [data.lease_id], now=now, detail="signal_retracted", signal_id=data.signal_id
    )
    log.info(
        "notifier.signal_retracted",
        lease_id=data.lease_id,
        signal=data.signal,
        reason=data.reason_code,
    )


async def _cancel(
    store: NotifierStore,
    lease_ids: Sequence[str],
    *,
    now: datetime,
    detail: str,
    signal_id: str | None = None,
) -> None:
    """Cancel pending tenant SMS and open call/letter tasks (with their staff alerts) of
    the leases: a statement per table however many leases. The events are staged lease by
    lease (its SMS, its alerts, its tasks), as cancelling one lease at a time would."""
    rows = await store.cancel_pending(lease_ids, now=now, detail=detail, signal_id=signal_id)
    cancelled = await store.cancel_open_tasks(lease_ids, now=now, signal_id=signal_id)
    task_ids = [t.id for t in cancelled]
    rows += await store.cancel_alerts(lease_ids, task_ids, now=now, detail=detail)
    by_lease: dict[str, tuple[list[Any], list[Any]]] = {lid: ([], []) for lid in lease_ids}
    for row in rows:
        by_lease[row.lease_id][0].append(row)
    for task in cancelled:
        by_lease[task.lease_id][1].append(task)
    for notes, lease_tasks in by_lease.values():
        for row in notes:
            await stage_notification(store, row, now)
        if lease_tasks:
            await store.stage([task_event(task, at=now) for task in lease_tasks])


async def _members(store: NotifierStore, team: str | None) -> list[engine.Member]:
    if team is None:
        return []
    return [_member(row) for row in await store.team_members(team)]


def _member(row: Any) -> engine.Member:
    return engine.Member(
        staff_id=row.id,
        team=row.team,
        work_start=_clock_time(row.work_start),
        work_end=_clock_time(row.work_end),
        work_days=row.work_days,
        is_lead=row.is_lead,
        active=row.active,
    )


@functools.lru_cache(maxsize=256)
def _clock_time(hhmm: str) -> time:
    # a task parses its team's hours: strptime costs ~10 µs, a team has a few distinct ones
    return datetime.strptime(hhmm, "%H:%M").time()


def staff_alert_id(template: str, task_id: str, staff_id: str) -> str:
    """The id of the SMS alert about a task to one staff member."""
    return f"{template}:{task_id}:{staff_id}"


async def open_task(
    store: NotifierStore,
    ctx: Context,
    *,
    task_id: str,
    kind: str,
    lease_id: str,
    org_id: str,
    team: str | None,
    now: datetime,
    signal_id: str | None = None,
    notification_id: str | None = None,
    alert: bool = True,
    note: str | None = None,
) -> bool:
    """Create a task assigned round-robin among the team on duty; alert the assignee by SMS."""
    assignee = None
    if team is not None:
        last = await store.cursor(team)
        members = await _members(store, team)
        assignee = engine.pick_assignee(members, last_assigned=last, now=now, tz=ctx.tz)
    row = await store.create_task(
        {
            "id": task_id,
            "kind": kind,
            "lease_id": lease_id,
            "org_id": org_id,
            "signal_id": signal_id,
            "notification_id": notification_id,
            "team": team,
            "assignee_id": assignee.staff_id if assignee else None,
            "status": "created",
            "version": 1,
            "due_at": engine.task_due(now, ctx.policy),
            "note": note,
            "created_at": now,
            "updated_at": now,
        }
    )
    if row is None:
        return False
    if assignee is not None and team is not None:
        await store.set_cursor(team, assignee.staff_id)
    await store.stage([task_event(row, at=now)])
    if alert and assignee is not None:
        # the task is new, so no alert about it exists: no statement to find out
        store.expect_new_notification(staff_alert_id("staff_alert", task_id, assignee.staff_id))
        await alert_staff(store, ctx, row, member=assignee, template="staff_alert", now=now)
    TASKS_CREATED.labels(kind).inc()
    log.info(
        "notifier.task_created", task_id=task_id, kind=kind, team=team, assigned=bool(assignee)
    )
    return True


async def alert_staff(
    store: NotifierStore,
    ctx: Context,
    task: Any,
    *,
    member: engine.Member,
    template: str,
    now: datetime,
) -> None:
    """Queue an SMS alert about `task` to a staff member, sent when they are next on duty."""
    staff_id = member.staff_id
    await queue_sms(
        store,
        ctx,
        notification_id=staff_alert_id(template, task.id, staff_id),
        lease_id=task.lease_id,
        org_id=task.org_id,
        recipient_kind="staff",
        recipient_id=staff_id,
        template=template,
        variables={
            "task_kind": task.kind,
            "team": task.team or "-",
            "lease_ref": task.lease_id,
            "due_at": task.due_at.astimezone(ctx.tz).strftime("%Y-%m-%d %H:%M")
            if task.due_at
            else "-",
        },
        now=now,
        task_id=task.id,
        due_at=engine.next_on_duty(member, now, ctx.tz),
    )


async def escalate_overdue(store: NotifierStore, ctx: Context, now: datetime) -> int:
    """Escalate unacknowledged tasks past due to the team lead (with an SMS alert)."""
    count = 0
    for task in await store.overdue_tasks(now):
        if not engine.needs_escalation(status=task.status, due_at=task.due_at, now=now):
            continue
        lead = engine.team_lead(await _members(store, task.team))
        row = await store.update_task(
            task.id,
            where_status=("created",),
            status="escalated",
            escalated_to=lead.staff_id if lead else None,
            escalated_at=now,
            updated_at=now,
        )
        if row is None:
            continue
        await store.stage([task_event(row, at=now)])
        TASKS_ESCALATED.inc()
        if lead is not None:
            ctx.teams_without_lead.discard(task.team)
            await alert_staff(store, ctx, row, member=lead, template="staff_escalation", now=now)
        elif task.team not in ctx.teams_without_lead:
            ctx.teams_without_lead.add(task.team)
            log.warning("notifier.escalation_without_lead", team=task.team, first_task_id=task.id)
        count += 1
    return count


async def fallback_task(
    store: NotifierStore, ctx: Context, row: Any, *, kind: str, now: datetime
) -> None:
    """Open a call (or letter) task when an SMS to a tenant cannot be delivered."""
    if row.recipient_kind != "tenant":
        return
    if row.signal_id and await store.retracted([row.signal_id]):
        return  # the signal was withdrawn: no follow-up of it
    lease = await store.get_lease(row.lease_id)
    await open_task(
        store,
        ctx,
        task_id=f"{kind}:{row.id}",
        kind=kind,
        lease_id=row.lease_id,
        org_id=row.org_id,
        team=lease.team if lease is not None else None,
        signal_id=row.signal_id,
        notification_id=row.id,
        now=now,
    )


async def apply_provider_status(
    store: NotifierStore,
    ctx: Context,
    *,
    attempt_id: str | None,
    sid: str | None,
    provider_status: str,
    error_code: str | None,
    now: datetime,
) -> str | None:
    """Apply a delivery receipt monotonically; return the new status or None if ignored."""
    row = await store.find_for_callback(sid=sid, attempt_id=attempt_id)
    new = engine.TWILIO_STATUS.get(provider_status)
    if row is None or new is None:
        return None
    result = engine.apply_status(row.status, new)
    if result is None:
        return None
    updated = await store.update_notification(
        row.id,
        where_status=(row.status,),
        status=result,
        provider_sid=row.provider_sid or sid,
        detail=f"code_{error_code}" if error_code else row.detail,
        sent_at=row.sent_at or (now if result in ("sent", "delivered") else None),
        updated_at=now,
    )
    if updated is None:
        return None
    await stage_notification(store, updated, now)
    if result in ("failed", "undelivered"):
        await fallback_task(store, ctx, updated, kind="phone_call", now=now)
    return result
