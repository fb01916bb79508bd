"""Walk a request's items in order: reject, mark duplicates, translate the rest. Pure.

`process` runs against what ingest already knows (leases, OCR numbers, complaints,
event ids seen), so a lease registered earlier in the same batch can be charged later in
it, and a repeated event id in one batch is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.processing import Context, Known, Rejected, Writes, translate
from ingest.schemas import ComplaintResolveIn, ItemError, PaymentIn, StrictIn
from shared.events import CloudEvent, EventData


@dataclass(slots=True)
class Item:
    """One event of a request: its validated body, or the errors that stopped validation."""

    index: int
    kind: str
    event_id: str | None
    body: StrictIn | None
    errors: list[ItemError] = field(default_factory=list)
    path_id: str | None = None


@dataclass(slots=True)
class Outcome:
    """The answer per item (status, errors, HTTP status) and the events to publish."""

    statuses: list[str]
    errors: list[list[ItemError]]
    http_status: list[int]
    events: list[CloudEvent[EventData]]
    writes: Writes


def process(items: list[Item], ctx: Context, known: Known) -> Outcome:
    """Walk `items` in order: reject, mark duplicates, translate the rest into events."""
    out = Outcome([], [], [], [], Writes())
    for item in items:
        status, errors, http = "accepted", item.errors, 202
        if item.body is None or item.event_id is None:
            status, http = "rejected", 422
        elif item.event_id in known.seen:
            status, http = "duplicate", 202
        else:
            try:
                data = translate(item.body, ctx, known, out.writes, path_id=item.path_id)
            except Rejected as exc:
                status, errors, http = "rejected", exc.errors, exc.status
            else:
                out.events.append(ctx.envelope(data, item.event_id))
                known.seen.add(item.event_id)
                out.writes.seen.append(item.event_id)
        out.statuses.append(status)
        out.errors.append(errors)
        out.http_status.append(http)
    return out


def referenced(items: list[Item]) -> tuple[set[str], set[str], set[str], set[str]]:
    """Return the lease ids, OCR numbers, complaint ids and event ids `items` mention."""
    leases: set[str] = set()
    ocrs: set[str] = set()
    complaints: set[str] = set()
    event_ids: set[str] = set()
    for item in items:
        if item.event_id is not None:
            event_ids.add(item.event_id)
        if item.path_id is not None:
            (complaints if item.kind == "complaint_resolved" else leases).add(item.path_id)
        body = item.body
        if body is None:
            continue
        lease_id = getattr(body, "lease_id", None)
        if lease_id is not None:
            leases.add(lease_id)
        if isinstance(body, PaymentIn):
            leases.add(body.reference)
            ocrs.add(body.reference)
        complaint_id = getattr(body, "complaint_id", None)
        if isinstance(body, ComplaintResolveIn) and complaint_id is not None:
            complaints.add(complaint_id)
    return leases, ocrs, complaints, event_ids
