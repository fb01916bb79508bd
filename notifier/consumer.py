"""Kafka batches (risk.signals, lease.events) -> engine -> store, in the batch's transaction."""

from __future__ import annotations

import structlog

from notifier.store import NotifierStore
from notifier.workflow import Context, on_lease, on_retracted, on_signal, prefetch_for_signals
from shared.bus import Batch, Handler
from shared.clock import Clock
from shared.events import LeaseEnded, LeaseRegistered, LeaseUpdated, SignalRaised, SignalRetracted
from shared.topics import LEASE_EVENTS, RISK_SIGNALS

log = structlog.get_logger(__name__)
TOPICS = (RISK_SIGNALS, LEASE_EVENTS)
LEASE_TYPES = (LeaseRegistered, LeaseUpdated)


def make_handler(ctx: Context, clock: Clock) -> Handler:
    """Return the batch handler; events are staged through the store into the outbox."""

    async def handle(batch: Batch) -> None:
        store = NotifierStore(batch.session, clock=clock, buffer_events=True)
        now = clock.now()
        await store.prefetch_leases([item.event.data.lease_id for item in batch.events])
        await store.prefetch_any_tenant(
            [i.event.data.lease_id for i in batch.events if isinstance(i.event.data, LEASE_TYPES)]
        )
        signals = [i.event.data for i in batch.events if isinstance(i.event.data, SignalRaised)]
        await store.retracted([sig.signal_id for sig in signals])
        if signals:
            tenants: dict[str, set[str]] = {}
            for sig in signals:
                lease = await store.get_lease(sig.lease_id)  # prefetched: no statement
                tenants[sig.lease_id] = set(lease.tenant_ids) if lease is not None else set()
            for item in batch.events:  # and those this batch's lease events name
                data = item.event.data
                if isinstance(data, LEASE_TYPES) and data.lease_id in tenants:
                    tenants[data.lease_id].update(t.tenant_id for t in data.tenants)
            await prefetch_for_signals(store, signals, tenants)
        no_welcome: list[str] = []  # existing stock: one log line per batch, not per lease
        for item in batch.events:
            data = item.event.data
            if isinstance(data, SignalRaised):
                await on_signal(store, ctx, data, now)
            elif isinstance(data, SignalRetracted):
                await on_retracted(store, data, now)
            elif isinstance(data, LeaseRegistered | LeaseUpdated | LeaseEnded):
                if await on_lease(store, ctx, data, now, event_time=item.event.time):
                    no_welcome.append(data.lease_id)
            else:
                log.debug("notifier.event_ignored", type=item.event.type)
        await store.flush_events()
        if no_welcome:
            log.info(
                "notifier.welcome_skipped",
                reason="lease_started_earlier",
                leases=len(no_welcome),
                first_lease_ids=no_welcome[:10],
            )

    return handle
