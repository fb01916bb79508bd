"""Read batch bodies (JSON array, NDJSON) and CSV ledger imports into items to process."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from ingest.pipeline import Item
from ingest.schemas import ITEM_TYPES, BatchItem, ItemError, StrictIn, TenantIn
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


# A JSON array without any error is validated in one pydantic call straight from the
# bytes (about half the cost of orjson + one model_validate per element), and without the
# Python control-character check per field when the bytes cannot hold a control character
# (StrictIn._no_control_characters costs about as much as the rest). Anything else, or any
# error, takes the per-item path, which names every bad item's field and reason.
_BATCH: TypeAdapter[list[Any]] = TypeAdapter(list[BatchItem])
_CONTROL_CHECK: Any = StrictIn._no_control_characters
# the escapes that decode to a character StrictIn refuses (shared.guard.CONTROL), and DEL
_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-fA-F]|\\u007[fF]|\\[bf]|\x7f")


def _strip_control_check(schema: Any) -> Any:
    """Return a copy of a core schema without StrictIn's control-character validators."""
    if isinstance(schema, list):
        return [_strip_control_check(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "function-after":
        func = getattr(schema["function"]["function"], "__func__", None)
        if func is _CONTROL_CHECK.__func__:
            return _strip_control_check(schema["schema"])
    return {k: _strip_control_check(v) for k, v in schema.items()}


def _unchecked_validator() -> SchemaValidator:
    """Return `_BATCH` without the control-character checks, building the same classes.

    pydantic-core reuses a finished model's own validator for a nested model schema (which
    has the checks); marked unfinished while this one is built, the stripped schema is used.
    """
    every: list[type[StrictIn]] = [*ITEM_TYPES.values(), TenantIn]
    models = [m for m in every if m.__pydantic_complete__]
    for m in models:
        m.__pydantic_complete__ = False
    try:
        return SchemaValidator(_strip_control_check(_BATCH.core_schema))
    finally:
        for m in models:
            m.__pydantic_complete__ = True


_UNCHECKED = _unchecked_validator()


def _all_valid(body: bytes) -> list[Item] | None:
    try:
        if (b"\\" in body or b"\x7f" in body) and _CONTROL_ESCAPE.search(body):
            bodies = _BATCH.validate_json(body)
        else:
            bodies = _UNCHECKED.validate_json(body)
    except ValidationError:
        return None
    # the body's own `type` and `event_id`, as to_item reads them from the raw element
    return [Item(i, b.type, b.event_id, b) for i, b in enumerate(bodies)]


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
    valid = _all_valid(body)
    if valid is not None:
        _check_count(len(valid), max_events)
        return valid
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
