"""The audit chain, pure: canonical rows, hashes and verification.

Each row's hash = sha256(prev_hash + canonical row). The reason (free text) is chained
through its sha256, so a retention purge may blank it and the chain still verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
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
    """Return the id of the first row that breaks the chain, or None if it verifies."""
    prev = GENESIS
    for row in rows:
        if row.prev_hash != prev or row_hash(prev, row) != row.hash:
            return row.id
        if row.reason is not None and digest(row.reason) != row.reason_sha256:
            return row.id
        prev = row.hash
    return None
