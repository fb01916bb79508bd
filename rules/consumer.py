"""Kafka batch -> ledger/complaint/case tables -> engine -> signals in the outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
import structlog

from rules.engine import Deadline, RetractionDraft, SignalDraft, evaluate, quiet
from rules.engine.history import Cut, settled_cut
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.bus import Batch, Handler
from shared.clock import Clock, local_date
from shared.events import (
    CaseOpened,
    CaseStatusChanged,
    CloudEvent,
    ComplaintReceived,
    ComplaintResolved,
    CreditIssued,
    EventData,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    LedgerWatermarkAdvanced,
    LegalStepRecorded,
    PaymentPlanAgreed,
    PaymentReceived,
    PaymentReversed,
    ReferralRecorded,
    RentCharged,
    SignalRaised,
    SignalRetracted,
    WarningIssued,
    new_event,
)
from shared.events.signal import RiskScore
from shared.topics import CASE_EVENTS, COMPLAINT_EVENTS, LEASE_EVENTS, LEDGER_EVENTS

log = structlog.get_logger(__name__)

TOPICS = (LEASE_EVENTS, LEDGER_EVENTS, COMPLAINT_EVENTS, CASE_EVENTS)
SOURCE = "bokvar/rules"


@lru_cache(maxsize=64)
def _local_day(instant: datetime) -> date:
    # the events of one publish share one time (decode parses each ce_time once)
    return local_date(instant)


def _ledger_row(event: CloudEvent[EventData]) -> dict[str, Any] | None:
    # one dict literal per kind, keys in one order (the insert's columns come from the first)
    d = event.data
    if isinstance(d, RentCharged):
        return {
            "lease_id": d.lease_id,
            "period": d.period,
            "due_date": d.due_date,
            "payment_id": None,
            "known_at": event.time,
            "kind": "charge",
            "entry_id": d.invoice_id,
            "amount_ore": d.amount_ore,
            "booked_on": min(_local_day(event.time), d.due_date),
            "invoice_id": d.invoice_id,
        }
    if isinstance(d, PaymentReceived):
        kind, entry_id, invoice_id, payment_id = "payment", d.payment_id, d.invoice_id, None
    elif isinstance(d, PaymentReversed):
        kind, entry_id, invoice_id, payment_id = "reversal", d.reversal_id, None, d.payment_id
    elif isinstance(d, CreditIssued):
        kind, entry_id, invoice_id, payment_id = "credit", d.credit_id, d.invoice_id, None
    else:
        return None
    return {
        "lease_id": d.lease_id,
        "period": None,
        "due_date": None,
        "payment_id": payment_id,
        "known_at": event.time,
        "kind": kind,
        "entry_id": entry_id,
        "amount_ore": d.amount_ore,
        "booked_on": d.booked_date,
        "invoice_id": invoice_id,
    }


async def apply_events(
    store: RulesStore,
    events: Sequence[CloudEvent[EventData]],
    now: datetime | None = None,
    *,
    defer_released: bool = False,
) -> set[str]:
    """Write the events' facts to the tables (idempotent by business id); return the
    touched leases to evaluate (all but those it created with no facts: see below).

    A case event that carries no fact the engine reads (a case opened or its status
    changed, a referral recorded: `_NO_FACTS`) touches nothing: cases sends one back
    for every case an alarm opens, and evaluating its lease again would find what the
    alarm's own evaluation found (the deadlines stored then look again when time passes).

    A ledger watermark is about no lease: it is stored per organisation (the latest wins),
    and the org's leases with a deadline in the next two days (those that may hold a
    stage for it) count as touched, so they are evaluated now (`now`: the clock's now).
    With `defer_released` their deadlines are made due at `now` instead, for the sweep
    (the consumer wakes it once the batch has committed: `make_handler`).
    """
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    entries = rows["entries"]
    # per lease: its last snapshot, and the org of its last event (for a placeholder);
    # keys in the order the leases first appear
    snapshots: dict[str, dict[str, Any]] = {}
    known: dict[str, str] = {}
    later: list[ComplaintResolved | LeaseEnded] = []  # applied after the inserts, in order
    touched: set[str] = set()
    for event in events:
        d = event.data
        if isinstance(d, LedgerWatermarkAdvanced):
            released = await _advance(store, event, d, now or event.time)
            if defer_released:
                await store.make_due(released, now or event.time)
            else:
                touched.update(released)
            continue
        if isinstance(d, _NO_FACTS):
            continue
        lease_id = d.lease_id
        touched.add(lease_id)
        known[lease_id] = d.org_id
        if isinstance(d, _SNAPSHOTS):
            snapshots[lease_id] = {
                "lease_id": lease_id,
                "org_id": d.org_id,
                "monthly_rent_ore": d.monthly_rent_ore,
                "due_day": d.due_day,
            }
            continue
        entry = _ledger_row(event)
        if entry is not None:
            entries.append(entry)
        elif isinstance(d, _LATER):
            later.append(d)
        else:
            _collect_other(d, rows)
    new = await store.upsert_leases(list(snapshots.values()))
    # a lease whose snapshot was just upserted needs no placeholder
    placeholders = [
        {"lease_id": lease_id, "org_id": org_id, "monthly_rent_ore": 0}
        for lease_id, org_id in known.items()
        if lease_id not in snapshots
    ]
    new |= await store.ensure_leases(placeholders)
    await store.add_entries(entries)
    await store.add_complaints(rows["complaints"])
    await store.add_warnings(rows["warnings"])
    await store.add_legal_steps(rows["steps"])
    await store.add_plans(rows["plans"])
    for d in later:
        if isinstance(d, ComplaintResolved):
            await store.resolve_complaint(d.complaint_id, d.resolution)
        else:
            await store.end_lease(d.lease_id, d.end_date)
    if new:
        # A lease this batch inserted has nothing stored but what the batch wrote (every
        # row of a lease is written after its lease row: a snapshot or a placeholder).
        # Without a ledger entry, complaint, warning, legal step or plan among those, it
        # has no signal emitted and no deadline, and `evaluate_leases` would find it
        # `quiet` and change nothing: it is not read back and evaluated (a third of the
        # leases of a feed whose charges follow the leases in a later batch).
        facts = {r["lease_id"] for kind in _FACTS for r in rows[kind]}
        touched -= new - facts
    return touched


# the `apply_events` rows that make a lease's evaluation input (the others: lease rows)
_FACTS = ("entries", "complaints", "warnings", "steps", "plans")
_SNAPSHOTS = (LeaseRegistered, LeaseUpdated)
# the case events with nothing for the engine (it reads legal steps and payment plans)
_NO_FACTS = (CaseOpened, CaseStatusChanged, ReferralRecorded)
_LATER = (ComplaintResolved, LeaseEnded)


async def _advance(
    store: RulesStore, event: CloudEvent[EventData], d: LedgerWatermarkAdvanced, now: datetime
) -> list[str]:
    """Store the watermark once all its copies are in; return the leases it may release."""
    if d.partition is not None and d.partitions is not None:
        args = (d.org_id, d.booked_through, d.partition, d.partitions, event.time)
        if not await store.add_watermark_copy(*args):
            return []  # copies in other partitions still to come
    return await apply_watermark(store, d.org_id, d.booked_through, event.time, now)


async def apply_watermark(
    store: RulesStore, org_id: str, through: date, received_at: datetime, now: datetime
) -> list[str]:
    """Advance the org's watermark; return its leases whose held stages it may release."""
    held = await store.advance_watermark(org_id, through, received_at, now)
    await store.drop_watermark_copies(org_id, through)
    log.info(
        "rules.watermark",
        org_id=org_id,
        booked_through=through.isoformat(),
        advanced=held is not None,
        leases=len(held or ()),
    )
    return held or []


def _collect_other(d: EventData, rows: dict[str, list[dict[str, Any]]]) -> None:
    if isinstance(d, ComplaintReceived):
        rows["complaints"].append(
            {
                "complaint_id": d.complaint_id,
                "lease_id": d.lease_id,
                "category": d.category,
                "occurred_on": local_date(d.occurred_at),
            }
        )
    elif isinstance(d, WarningIssued):
        rows["warnings"].append(
            {
                "warning_id": d.warning_id,
                "lease_id": d.lease_id,
                "category": d.category,
                "issued_on": d.issued_date,
            }
        )
    elif isinstance(d, LegalStepRecorded):
        rows["steps"].append(
            {"step_id": d.step_id, "lease_id": d.lease_id, "step": d.step, "step_date": d.step_date}
        )
    elif isinstance(d, PaymentPlanAgreed):
        installments = [[i.due_date.isoformat(), i.amount_ore] for i in d.installments]
        rows["plans"].append(
            {
                "plan_id": d.plan_id,
                "lease_id": d.lease_id,
                "agreed_on": d.agreed_on,
                "installments": orjson.dumps(installments).decode(),
            }
        )


def signal_event(
    draft: SignalDraft, *, lease_id: str, org_id: str, version: str, risk: RiskScore
) -> CloudEvent[EventData]:
    """Wrap an engine decision in a SignalRaised CloudEvent (id = the signal id)."""
    data = SignalRaised(
        lease_id=lease_id,
        org_id=org_id,
        signal_id=draft.signal_id,
        signal=draft.signal,
        rule=draft.rule,
        policy_version=version,
        occurred_at=draft.occurred_at,
        period=draft.period,
        due_date=draft.due_date,
        days_late=draft.days_late,
        arrears_ore=draft.arrears_ore,
        inputs=draft.inputs,
        risk=risk,
        reason_sv=draft.reason_sv,
        reason_en=draft.reason_en,
    )
    return new_event(data, id=draft.signal_id, source=SOURCE, time=draft.occurred_at)


async def evaluate_leases(
    store: RulesStore, policies: PolicySet, lease_ids: Sequence[str], now: datetime
) -> list[CloudEvent[EventData]]:
    """Evaluate leases at `now`: claim new signals, replace deadlines; return events to emit."""
    today = local_date(now)
    states, emitted, open_deadlines, cuts = await store.load_for_evaluation(lease_ids, today)
    watermarks = await store.watermarks(s.org_id for s in states.values())
    claims: list[dict[str, Any]] = []
    events: dict[str, CloudEvent[EventData]] = {}
    deadlines: dict[str, list[Deadline]] = {}
    moved: dict[str, Cut | None] = {}
    for lease_id, state in states.items():
        policy = policies.for_org(state.org_id)
        seen = emitted.get(lease_id, _NOTHING)
        if quiet(state, policy, seen):  # registered, not charged yet: nothing to find
            deadlines[lease_id] = []
            continue
        ev = evaluate(state, policy, now, seen, watermarks.get(state.org_id))
        for retraction in ev.retractions:
            claims.append(_claim(retraction.retraction_id, lease_id, "signal_retracted", now, now))
            events[retraction.retraction_id] = retraction_event(
                retraction, lease_id=lease_id, org_id=state.org_id, version=policy.version
            )
        # only the earliest matters: the sweep re-evaluates then and stores the next one
        deadlines[lease_id] = [min(ev.deadlines, key=_soonest)] if ev.deadlines else []
        for draft in ev.signals:
            claims.append(_claim(draft.signal_id, lease_id, draft.signal, draft.occurred_at, now))
            events[draft.signal_id] = signal_event(
                draft,
                lease_id=lease_id,
                org_id=state.org_id,
                version=policy.version,
                risk=ev.risk.model(),
            )
        stored, used = cuts.get(lease_id, _NO_CUT)
        # a cut moves on by at most the entries read: fewer than CUT_STEP, it stays (unless
        # the stored one did not hold, which is replaced or dropped)
        if store.keeps_cuts and (len(state.entries) >= CUT_STEP or (stored and not used)):
            said = seen
            if ev.signals or ev.retractions:  # what this evaluation says counts too
                said = seen.union([d.signal_id for d in ev.signals])
                said = said.union([r.retraction_id for r in ev.retractions])
            cut = settled_cut(state, ev.ledger, said, today, used)
            if _moved(stored, used, cut):
                moved[lease_id] = cut
    new = await store.claim_signals(claims)
    await store.replace_deadlines(list(states), deadlines, open_deadlines)
    await store.save_cuts(moved)
    out = [events[sid] for sid in events if sid in new]
    for event in out:
        log.info("rules.signal_emitted", lease_id=event.key, signal_id=event.id, type=event.type)
    return out


_NOTHING: frozenset[str] = frozenset()
_NO_CUT: tuple[None, None] = (None, None)
# a lease's cut moves on once that spares reading this many more entries: one write a lease
# every other month, none for a ledger of a few entries
CUT_STEP = 4


def _moved(stored: Cut | None, used: Cut | None, cut: Cut | None) -> bool:
    """Tell whether to store `cut` in place of `stored` (`used`: the cut the entries were
    read after this time, None when all were read)."""
    if stored is not None and used is None:  # not usable now: replace it, or drop it
        return cut != stored
    return cut is not None and cut.entries - (stored.entries if stored else 0) >= CUT_STEP


def _soonest(d: Deadline) -> tuple[datetime, str]:
    return (d.due_at, d.stage)


def _claim(
    signal_id: str, lease_id: str, signal: str, occurred_at: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "lease_id": lease_id,
        "signal": signal,
        "occurred_at": occurred_at,
        "emitted_at": now,
    }


def retraction_event(
    draft: RetractionDraft, *, lease_id: str, org_id: str, version: str
) -> CloudEvent[EventData]:
    """Wrap a retraction in a SignalRetracted CloudEvent (id = `{signal id}:retracted`)."""
    data = SignalRetracted(
        lease_id=lease_id,
        org_id=org_id,
        retraction_id=draft.retraction_id,
        signal_id=draft.signal_id,
        signal=draft.signal,
        rule=draft.rule,
        policy_version=version,
        occurred_at=draft.occurred_at,
        reason_code=draft.reason_code,
        period=draft.period,
        due_date=draft.due_date,
        inputs=draft.inputs,
        reason_sv=draft.reason_sv,
        reason_en=draft.reason_en,
    )
    return new_event(data, id=draft.retraction_id, source=SOURCE, time=draft.occurred_at)


def make_handler(
    policies: PolicySet,
    clock: Clock,
    *,
    wake_sweep: Callable[[], Awaitable[None]] | None = None,
) -> Handler:
    """Return the consumer handler: apply the batch, evaluate touched leases, emit signals.

    With `wake_sweep`, the leases a watermark releases are made due now instead of
    evaluated in the batch (`apply_events(defer_released=True)`), and `wake_sweep` runs
    once a batch that brought a watermark has committed (`Batch.after_commit`). The sweep
    then evaluates them in chunks, each chunk's signals relayed as it commits, instead of
    thousands in one transaction at month-end; and it applies a watermark whose last
    copies two loops or instances stored at once (`rules.sweep.complete_watermarks`).
    """

    async def handle(batch: Batch) -> None:
        store = RulesStore(batch.session)
        now = clock.now()
        events_in = [r.event for r in batch.events]
        deferred = wake_sweep is not None
        touched = await apply_events(store, events_in, now, defer_released=deferred)
        events = await evaluate_leases(store, policies, sorted(touched), now)
        await batch.emit(*events)
        if wake_sweep is not None and any(
            isinstance(e.data, LedgerWatermarkAdvanced) for e in events_in
        ):
            batch.after_commit(wake_sweep)

    return handle
