"""Telling database errors apart: PostgreSQL's SQLSTATE, SQLite's error name."""

from __future__ import annotations

UNIQUE_VIOLATION = "23505"
# sqlite3's names of a primary key's and a unique index's violation (Python 3.11+)
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc`, the driver error SQLAlchemy wrapped (its `orig`) and the causes, in order."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a database error: the driver's (asyncpg's), or the one
    SQLAlchemy wrapped (its `orig`, or the exception's cause). None if it has none."""
    for current in _causes(exc):
        state = getattr(current, "sqlstate", None)
        if state:
            return str(state)
    return None


def is_unique_violation(exc: BaseException) -> bool:
    """Tell whether `exc` is a duplicate key: PostgreSQL's "duplicate key value violates
    unique constraint", or SQLite's "UNIQUE constraint failed" on a key or unique index."""
    if sqlstate(exc) == UNIQUE_VIOLATION:
        return True
    return any(getattr(c, "sqlite_errorname", None) in _SQLITE_UNIQUE for c in _causes(exc))
