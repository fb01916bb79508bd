"""Generate the JSON Schemas of every event type into `docs/events/`."""

from __future__ import annotations

from pathlib import Path

import orjson

import shared.events  # noqa: F401  (registers every event type)
from shared.events.base import REGISTRY


def render() -> dict[str, bytes]:
    """Return {file name: JSON Schema bytes} for every registered event type."""
    files: dict[str, bytes] = {}
    for event_type, model in sorted(REGISTRY.items()):
        schema = model.model_json_schema()
        schema["$id"] = f"https://bokvar.se/events/{event_type}.json"
        schema["x-topic"] = model.topic
        schema["x-cloudevents-type"] = event_type
        files[f"{event_type}.json"] = (
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
    return files


def write(directory: Path) -> list[Path]:
    """Write the schemas into `directory`, removing stale ones; return the written paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in directory.glob("se.bokvar.*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, content in files.items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written
