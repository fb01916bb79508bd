"""The audit chain, pure: canonical rows, hashes and verification.

Each row's hash = sha256(prev_hash + canonical row). The reason (free text) is chained
through its sha256, so a retention purge may blank it and the chain still verifies.

Links alone cannot show that the newest rows were deleted, so the chain's end must match
the head row (`audit_head`), and anchors kept outside the database (the `cases.audit_anchor`
log line: last id, its hash and the row count) must all still be found in the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit row as hashed."""

    id: int
    at: datetime
    actor: str
    role: str
    org_id: str | None
    action: str
    outcome: str
    case_id: str | None
    reason: str | None
    reason_sha256: str
    prev_hash: str
    hash: str = ""


def digest(text: str | None) -> str:
    """Return the sha256 hex of a reason ('' when none)."""
    return hashlib.sha256((text or "").encode()).hexdigest()


def canonical(row: AuditRow) -> bytes:
    """Return the canonical bytes of a row (sorted keys, UTC microsecond time)."""
    body = {
        "id": row.id,
        "at": row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": row.actor,
        "role": row.role,
        "org_id": row.org_id,
        "action": row.action,
        "outcome": row.outcome,
        "case_id": row.case_id,
        "reason_sha256": row.reason_sha256,
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def row_hash(prev_hash: str, row: AuditRow) -> str:
    """Return sha256(prev_hash + canonical row)."""
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


def first_broken(rows: Iterable[AuditRow]) -> int | None:
    """Return the id of the first row that breaks the chain's links, or None if they hold."""
    return verify_chain(rows).first_broken


@dataclass(frozen=True, slots=True)
class Anchor:
    """A point of the chain recorded elsewhere: row `last_id`, its hash, rows up to it."""

    last_id: int
    last_hash: str
    rows: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of a verification: rows checked, first broken (or missing) row id, why."""

    rows: int
    first_broken: int | None = None
    problem: str | None = None


def verify_chain(
    rows: Iterable[AuditRow], *, head: Anchor | None = None, anchors: Sequence[Anchor] = ()
) -> Verdict:
    """Check links and hashes, then the chain's end against `head` and every anchor."""
    wanted = {a.last_id: a for a in anchors}
    prev, count, last_id = GENESIS, 0, 0
    for row in rows:
        count += 1
        if row.prev_hash != prev or row_hash(prev, row) != row.hash:
            return Verdict(count, row.id, f"row {row.id} does not match its hash or link")
        if row.reason is not None and digest(row.reason) != row.reason_sha256:
            return Verdict(count, row.id, f"the reason of row {row.id} was changed")
        anchor = wanted.get(row.id)
        if anchor is not None and (anchor.last_hash, anchor.rows) != (row.hash, count):
            return Verdict(count, row.id, f"row {row.id} differs from its anchor")
        prev, last_id = row.hash, row.id
    if head is not None and (head.last_id, head.last_hash) != (last_id, prev):
        return Verdict(
            count,
            last_id + 1,
            f"the chain ends at row {last_id} but the head records row {head.last_id}: "
            "rows were removed or the head was changed",
        )
    beyond = [a.last_id for a in anchors if a.last_id > last_id]
    if beyond:
        return Verdict(
            count,
            last_id + 1,
            f"an anchor records row {max(beyond)} but the chain ends at row {last_id}: "
            "the newest rows were removed",
        )
    return Verdict(count)
