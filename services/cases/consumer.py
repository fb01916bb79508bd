"""Consumer of risk.signals, notification.events and lease.events: build cases and timelines."""

from __future__ import annotations

from typing import cast

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
    class_kind,
)
from shared.topics import LEASE_EVENTS, NOTIFICATION_EVENTS, RISK_SIGNALS

log = structlog.get_logger(__name__)
TOPICS = (RISK_SIGNALS, NOTIFICATION_EVENTS, LEASE_EVENTS)
_Notification = NotificationStatusChanged | TaskChanged
_Lease = LeaseRegistered | LeaseUpdated | LeaseEnded
# What the handler does with each event class, in the order it tests them (class_kind).
_KINDS: dict[type[EventData], str] = {
    SignalRaised: "signal",
    SignalRetracted: "retracted",
    NotificationStatusChanged: "notification",
    TaskChanged: "notification",
    LeaseRegistered: "lease",
    LeaseUpdated: "lease",
    LeaseEnded: "lease",
}


def kind_of(data: EventData) -> str | None:
    """Return what the handler does with `data` (None: ignored): the first class of
    `_KINDS` that `data` is an instance of."""
    return class_kind(data, _KINDS)


def make_handler(clock: Clock) -> Handler:
    """Return the batch handler: every event applied in the batch's one transaction."""

    async def handle(batch: Batch) -> None:
        store = CasesStore(batch.session, batched=True)
        kinds: list[str | None] = []
        leases: list[str] = []  # every event's lease
        signalled: list[str] = []  # the leases of signals (a case may open: its household)
        for item in batch.events:  # one pass: a batch has up to 2,000 events
            data = item.event.data
            kind = kind_of(data)
            kinds.append(kind)
            leases.append(data.lease_id)
            if kind == "signal":
                signalled.append(data.lease_id)
        await store.prefetch_open(leases)
        await store.prefetch_households(signalled)

        async def emit(event: CloudEvent[EventData]) -> None:
            await batch.emit(event)  # the runner writes the batch's events in one statement

        now = clock.now()  # one instant for the batch: it is one transaction (as the notifier)
        for item, kind in zip(batch.events, kinds, strict=True):
            data = item.event.data  # of a class `kind` names
            if kind == "signal":
                await actions.on_signal(
                    store, item.event.id, cast(SignalRaised, data), now=now, emit=emit
                )
            elif kind == "retracted":
                await actions.on_retracted(store, cast(SignalRetracted, data), now=now, emit=emit)
            elif kind == "notification":
                await actions.on_notification(store, cast(_Notification, data))
            elif kind == "lease":
                await actions.on_lease(store, cast(_Lease, data), now=now)
            else:
                log.debug("cases.event_ignored", type=item.event.type)
        await store.flush_entries()
        log.info("cases.batch_applied", events=len(batch.events), emitted=len(batch.emitted))

    return handle
