"""Walk a request's items in order: reject, mark duplicates, translate the rest. Pure.

`process` runs against what ingest already knows (leases, OCR numbers, complaints,
event ids seen), so a lease registered earlier in the same batch can be charged later in
it, and a repeated event id in one batch is a duplicate.
"""

from __future__ import annotations

import hashlib
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
    """Walk `items` in order: reject, mark duplicates and conflicts, translate the rest."""
    out = Outcome([], [], [], [], Writes())
    for item in items:
        status, errors, http = "accepted", item.errors, 202
        if item.body is None or item.event_id is None:
            status, http = "rejected", 422
        elif item.event_id in known.seen:
            stored, digest = known.seen[item.event_id], body_hash(item)
            if stored is None or stored == digest:
                status, http = "duplicate", 202
            else:
                status, errors, http = "rejected", [_conflict(stored, digest)], 409
        else:
            try:
                data = translate(item.body, ctx, known, out.writes, path_id=item.path_id)
            except Rejected as exc:
                status, errors, http = "rejected", exc.errors, exc.status
            else:
                out.events.append(ctx.envelope(data, item.event_id))
                known.seen[item.event_id] = out.writes.seen[item.event_id] = body_hash(item)
        out.statuses.append(status)
        out.errors.append(errors)
        out.http_status.append(http)
    return out


_TYPE = {"type"}
_PREFIX: dict[tuple[str, str | None], bytes] = {}


def body_hash(item: Item) -> str:
    """Return the sha256 of what an event says: its kind, path id and validated body."""
    body = item.body
    assert body is not None
    # the bytes model_dump_json(exclude={"type"}) encodes, without its str round trip:
    # stored hashes must not change (a reused event id is checked against them)
    value = body.__pydantic_serializer__.to_json(body, exclude=_TYPE)
    key = (item.kind, item.path_id)
    prefix = _PREFIX.get(key)
    if prefix is None:
        prefix = f"{item.kind}\0{item.path_id or ''}\0".encode()
        if item.path_id is None:  # path ids vary per request: keep only the kinds
            _PREFIX[key] = prefix
    return hashlib.sha256(prefix + value).hexdigest()


def _conflict(stored: str, digest: str) -> ItemError:
    return ItemError(
        field="event_id",
        reason=f"event id already used for a different body (body hash sha256:{stored[:12]}, "
        f"this body sha256:{digest[:12]}); a new event needs a new event id",
    )


# input class -> what `referenced` reads from it: 1 payment, 2 complaint resolution,
# 0 anything else (its lease_id); isinstance() on a pydantic model class costs ABCMeta's
_SHAPE: dict[type, int] = {}


def _shape(cls: type) -> int:
    shape = _SHAPE.get(cls)
    if shape is None:
        shape = _SHAPE[cls] = (
            1 if issubclass(cls, PaymentIn) else 2 if issubclass(cls, ComplaintResolveIn) else 0
        )
    return shape


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
        # a missing attribute costs pydantic's __getattr__ and an exception: read __dict__
        fields = body.__dict__
        shape = _shape(type(body))
        if shape == 1:
            reference = fields["reference"]
            leases.add(reference)
            ocrs.add(reference)
            if fields["lease_id"] is not None:
                leases.add(fields["lease_id"])
        elif shape == 2:
            complaint_id = fields.get("complaint_id")
            if complaint_id is not None:
                complaints.add(complaint_id)
        else:
            lease_id = fields.get("lease_id")
            if lease_id is not None:
                leases.add(lease_id)
    return leases, ocrs, complaints, event_ids
