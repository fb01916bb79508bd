"""Telling database errors apart by their SQLSTATE."""

from __future__ import annotations

UNIQUE_VIOLATION = "23505"


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a database error: the driver's (asyncpg's), or the one
    SQLAlchemy wrapped (its `orig`, or the exception's cause). None if it has none."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if state:
            return str(state)
        current = getattr(current, "orig", None) or current.__cause__
    return None


def is_unique_violation(exc: BaseException) -> bool:
    """Tell whether `exc` is PostgreSQL's "duplicate key value violates unique constraint"."""
    return sqlstate(exc) == UNIQUE_VIOLATION
