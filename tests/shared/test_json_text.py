"""JSON column text written for a JSON record-set insert: the text SQLAlchemy writes."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import asyncpg

from shared.db.bulk import json_text_processor

VALUES = [
    {},
    {"rule": "ladder.late", "days_late": 3, "arrears_ore": 812500, "risk": 0.25},
    {"reason_sv": "Hyran för 2026-03 är obetald", "emoji": "\U0001f600", "ctl": "a\nb\t\x07"},
    {"nested": {"list": [1, None, True, False, "x"], "empty": []}, "q": 'dq"uote \\ back'},
    {"nan": math.nan, "inf": math.inf, 1: "int key", None: "none key"},
    [1, 2],
    "text",
    None,
]


@pytest.mark.parametrize("value", VALUES)
def test_the_same_text_as_the_columns_bind_processor(value: object) -> None:
    dialect = asyncpg.dialect()  # type: ignore[no-untyped-call]
    column = JSON()
    expected = dialect.type_descriptor(column).bind_processor(dialect)
    fast = json_text_processor(dialect, column)
    assert expected is not None and fast is not None
    assert fast(value) == expected(value) == json.dumps(value)


def test_refusals_as_json_dumps_and_the_encoder_stays_usable() -> None:
    fast = json_text_processor(asyncpg.dialect(), JSON())  # type: ignore[no-untyped-call]
    assert fast is not None
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        fast(circular)
    with pytest.raises(TypeError, match="not JSON serializable"):
        fast({"x": object()})
    assert fast({"x": [circular is not None]}) == '{"x": [true]}'


def test_a_configured_serializer_is_kept() -> None:
    dialect = asyncpg.dialect(json_serializer=lambda v: "custom")  # type: ignore[no-untyped-call]
    fast = json_text_processor(dialect, JSON())
    assert fast is not None and fast({"a": 1}) == "custom"
