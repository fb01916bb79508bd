"""Read batch bodies (JSON array, NDJSON) and CSV ledger imports into items to process."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from pydantic import ValidationError

from ingest.pipeline import Item
from ingest.schemas import ITEM_TYPES, ItemError, StrictIn
from shared.http import BadRequest, PayloadTooLarge

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})

# The columns of a CSV ledger import (header row required; extra columns are rejected).
CSV_COLUMNS = (
    "type",
    "event_id",
    "lease_id",
    "invoice_id",
    "ocr",
    "period",
    "amount_ore",
    "due_date",
    "payment_id",
    "booked_date",
    "reference",
    "reversal_id",
    "credit_id",
    "reason",
)
CSV_TYPES = frozenset({"charge", "payment", "reversal", "credit"})
_CSV_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f for f in ITEM_TYPES[name].model_fields if f in CSV_COLUMNS) for name in CSV_TYPES
}


def validation_errors(exc: ValidationError) -> list[ItemError]:
    """Return a pydantic error as field/reason pairs."""
    errors = []
    for err in exc.errors(include_url=False):
        reason = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        errors.append(ItemError(field=".".join(str(p) for p in err["loc"]), reason=reason))
    return errors


def to_item(index: int, raw: Any) -> Item:
    """Validate one raw batch element against the model its `type` names."""
    if not isinstance(raw, dict):
        return Item(index, "unknown", None, None, [ItemError(field="", reason="not an object")])
    kind = raw.get("type")
    event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
    model = ITEM_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        reason = f"must be one of {', '.join(ITEM_TYPES)}"
        return Item(index, "unknown", event_id, None, [ItemError(field="type", reason=reason)])
    try:
        body: StrictIn = model.model_validate(raw)
    except ValidationError as exc:
        return Item(index, str(kind), event_id, None, validation_errors(exc))
    return Item(index, str(kind), event_id, body)


def parse_batch(body: bytes, media_type: str, *, max_events: int) -> list[Item]:
    """Parse a JSON array or NDJSON body into validated items, in order."""
    if media_type in NDJSON_TYPES:
        lines = [line for line in body.splitlines() if line.strip()]
        _check_count(len(lines), max_events)
        items = []
        for i, line in enumerate(lines):
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError:
                items.append(
                    Item(i, "unknown", None, None, [ItemError(field="", reason="bad JSON")])
                )
                continue
            items.append(to_item(i, raw))
        return items
    try:
        raws = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(raws, list):
        raise BadRequest("a JSON batch is an array of events")
    _check_count(len(raws), max_events)
    return [to_item(i, raw) for i, raw in enumerate(raws)]


def _check_count(count: int, max_events: int) -> None:
    if count > max_events:
        raise PayloadTooLarge(f"at most {max_events} events per batch, got {count}")
    if count == 0:
        raise BadRequest("the batch is empty")


def parse_csv(body: bytes, *, max_events: int) -> list[Item]:
    """Parse a CSV ledger import (columns: CSV_COLUMNS) into validated items."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the CSV is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if not header or "type" not in header or "event_id" not in header:
        raise BadRequest(f"the CSV needs a header row with columns from {', '.join(CSV_COLUMNS)}")
    if unknown:
        raise BadRequest(f"unknown CSV columns: {', '.join(unknown)}")
    rows = list(reader)
    _check_count(len(rows), max_events)
    return [_csv_item(i, row) for i, row in enumerate(rows)]


def _csv_item(index: int, row: dict[str | Any, Any]) -> Item:
    kind = row.get("type") or ""
    if kind not in CSV_TYPES:
        reason = f"must be one of {', '.join(sorted(CSV_TYPES))}"
        return Item(
            index,
            "unknown",
            row.get("event_id") or None,
            None,
            [ItemError(field="type", reason=reason)],
        )
    if row.get(None):
        return Item(
            index,
            kind,
            row.get("event_id") or None,
            None,
            [ItemError(field="", reason="more cells than header columns")],
        )
    raw: dict[str, Any] = {"type": kind}
    for name, value in row.items():
        if name is None or value is None or value == "" or name == "type":
            continue
        if name not in _CSV_FIELDS[kind]:
            return Item(
                index,
                kind,
                row.get("event_id") or None,
                None,
                [ItemError(field=str(name), reason=f"not a column of a {kind} row")],
            )
        raw[name] = value
    if "amount_ore" in raw:
        try:
            raw["amount_ore"] = int(raw["amount_ore"])
        except ValueError:
            return Item(
                index,
                kind,
                row.get("event_id") or None,
                None,
                [ItemError(field="amount_ore", reason="an integer number of öre")],
            )
    return to_item(index, raw)
