"""Kafka batches (risk.signals, lease.events) -> engine -> store, in the batch's transaction."""

from __future__ import annotations

from typing import cast

import structlog

from notifier.store import NotifierStore
from notifier.workflow import (
    Context,
    on_arrears_cleared,
    on_lease,
    on_retracted,
    on_signal,
    prefetch_for_signals,
)
from shared.bus import Batch, Handler, Received
from shared.clock import Clock
from shared.events import (
    EventData,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    SignalRaised,
    SignalRetracted,
    class_kind,
)
from shared.topics import LEASE_EVENTS, RISK_SIGNALS

log = structlog.get_logger(__name__)
TOPICS = (RISK_SIGNALS, LEASE_EVENTS)
_Lease = LeaseRegistered | LeaseUpdated
# What the handler does with each event class, in the order it tests them (class_kind).
_KINDS: dict[type[EventData], str] = {
    SignalRaised: "signal",
    SignalRetracted: "retracted",
    LeaseRegistered: "lease",
    LeaseUpdated: "lease",
    LeaseEnded: "lease_ended",
}


def kind_of(data: EventData) -> str | None:
    """Return what the handler does with `data` (None: ignored): the first class of
    `_KINDS` that `data` is an instance of ("lease": registered or updated)."""
    return class_kind(data, _KINDS)


async def _signal_tenants(
    store: NotifierStore, signals: list[SignalRaised], pairs: list[tuple[Received, str | None]]
) -> dict[str, set[str]]:
    """The tenant ids of each signalled lease: stored, and those this batch's lease events name."""
    tenants: dict[str, set[str]] = {}
    for sig in signals:
        lease = await store.get_lease(sig.lease_id)  # prefetched: no statement
        tenants[sig.lease_id] = set(lease.tenant_ids) if lease is not None else set()
    for item, kind in pairs:
        data = item.event.data
        if kind == "lease" and data.lease_id in tenants:
            tenants[data.lease_id].update(t.tenant_id for t in cast(_Lease, data).tenants)
    return tenants


def make_handler(ctx: Context, clock: Clock) -> Handler:
    """Return the batch handler; events are staged through the store into the outbox."""

    async def handle(batch: Batch) -> None:
        store = NotifierStore(batch.session, clock=clock, buffer_events=True)
        now = clock.now()
        pairs: list[tuple[Received, str | None]] = []
        signals: list[SignalRaised] = []
        leased: list[str] = []  # the leases of lease events (registered or updated)
        for item in batch.events:  # one pass: a batch has up to 2,000 events
            data = item.event.data
            kind = kind_of(data)
            pairs.append((item, kind))
            if kind == "signal":
                signals.append(cast(SignalRaised, data))
            elif kind == "lease":
                leased.append(data.lease_id)
        # only a signal reads its lease (`on_signal`, `_signal_tenants`); a lease event
        # writes its lease without reading it, and its lease is nearly always new: looking
        # up the batch's every lease cost the server ~2 µs per lease event for nothing
        await store.prefetch_leases([sig.lease_id for sig in signals])
        await store.prefetch_any_tenant(leased)
        await store.retracted([sig.signal_id for sig in signals])
        if signals:
            tenants = await _signal_tenants(store, signals, pairs)
            await prefetch_for_signals(store, signals, tenants)
        no_welcome: list[str] = []  # existing stock: one log line per batch, not per lease
        # a run of arrears_cleared signals (a day's payments from late payers) is applied
        # together when the run ends: they only cancel, each for its own lease
        cleared: list[SignalRaised] = []
        for item, kind in pairs:
            data = item.event.data  # of a class `kind` names
            if kind == "signal" and cast(SignalRaised, data).signal == "arrears_cleared":
                cleared.append(cast(SignalRaised, data))
                continue
            if cleared:
                await on_arrears_cleared(store, cleared, now)
                cleared = []
            if kind == "signal":
                await on_signal(store, ctx, cast(SignalRaised, data), now)
            elif kind == "retracted":
                await on_retracted(store, cast(SignalRetracted, data), now)
            elif kind in ("lease", "lease_ended"):
                lease_event = cast("_Lease | LeaseEnded", data)
                if await on_lease(store, ctx, lease_event, now, event_time=item.event.time):
                    no_welcome.append(data.lease_id)
            else:
                log.debug("notifier.event_ignored", type=item.event.type)
        if cleared:
            await on_arrears_cleared(store, cleared, now)
        await store.flush_events()
        if no_welcome:
            log.info(
                "notifier.welcome_skipped",
                reason="lease_started_earlier",
                leases=len(no_welcome),
                first_lease_ids=no_welcome[:10],
            )

    return handle
