"""Consumer of risk.signals, notification.events and lease.events: build cases and timelines."""

from __future__ import annotations

import structlog

from services.cases import actions
from services.cases.store import CasesStore
from shared.bus import Batch, Handler
from shared.clock import Clock
from shared.events import (
    CloudEvent,
    EventData,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    NotificationStatusChanged,
    SignalRaised,
    SignalRetracted,
    TaskChanged,
)
from shared.topics import LEASE_EVENTS, NOTIFICATION_EVENTS, RISK_SIGNALS

log = structlog.get_logger(__name__)
TOPICS = (RISK_SIGNALS, NOTIFICATION_EVENTS, LEASE_EVENTS)


def make_handler(clock: Clock) -> Handler:
    """Return the batch handler: every event applied in the batch's one transaction."""

    async def handle(batch: Batch) -> None:
        store = CasesStore(batch.session, batched=True)
        await store.prefetch_open([item.event.data.lease_id for item in batch.events])
        await store.prefetch_households(
            [i.event.data.lease_id for i in batch.events if isinstance(i.event.data, SignalRaised)]
        )

        async def emit(event: CloudEvent[EventData]) -> None:
            await batch.emit(event)  # the runner writes the batch's events in one statement

        for item in batch.events:
            data = item.event.data
            now = clock.now()
            if isinstance(data, SignalRaised):
                await actions.on_signal(store, item.event.id, data, now=now, emit=emit)
            elif isinstance(data, SignalRetracted):
                await actions.on_retracted(store, data, now=now, emit=emit)
            elif isinstance(data, NotificationStatusChanged | TaskChanged):
                await actions.on_notification(store, data)
            elif isinstance(data, LeaseRegistered | LeaseUpdated | LeaseEnded):
                await actions.on_lease(store, data, now=now)
            else:
                log.debug("cases.event_ignored", type=item.event.type)
        await store.flush_entries()
        log.info("cases.batch_applied", events=len(batch.events), emitted=len(batch.emitted))

    return handle
