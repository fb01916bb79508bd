"""Database layer: engines, column types, inbox/outbox tables, migrations."""

from shared.db.engine import Database, is_sqlite, service_url
from shared.db.tables import inbox_table, new_metadata, outbox_table
from shared.db.types import BigIntPK, UtcDateTime

__all__ = [
    "BigIntPK",
    "Database",
    "UtcDateTime",
    "inbox_table",
    "is_sqlite",
    "new_metadata",
    "outbox_table",
    "service_url",
]
