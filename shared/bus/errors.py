"""Which failures are transient (retry the batch) and which are the message's fault (DLQ)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError

# connection exception, transaction rollback (serialization, deadlock), insufficient
# resources, operator intervention (shutdown, cannot connect now)
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})


def is_transient(exc: BaseException) -> bool:
    """Tell whether `exc` means "the database or broker is unavailable right now"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current,
            OperationalError
            | InterfaceError
            | TimeoutError
            | OSError
            | ConnectionError
            | asyncio.TimeoutError
            | KafkaConnectionError
            | KafkaTimeoutError,
        ):
            return True
        if isinstance(current, KafkaError) and getattr(current, "retriable", False):
            return True
        sqlstate = str(getattr(current, "sqlstate", "") or "")
        if sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or (
            sqlstate == "55000" and "accepting connections" in str(current)
        ):
            return True
        name = type(current).__name__
        if name in {
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "ConnectionFailureError",
            "InterfaceError",
            "TooManyConnectionsError",
            "AdminShutdownError",
            "ConnectionRejectionError",
            "InvalidCatalogNameError",
        }:
            return True
        current = current.__cause__ or current.__context__
    return False
