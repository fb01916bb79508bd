"""Tables every consuming or publishing service has in its own schema: inbox and outbox."""

from __future__ import annotations

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

from shared.db.types import BigIntPK, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Return a MetaData with the naming convention every service uses."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def inbox_table(metadata: MetaData) -> Table:
    """The ids of events already applied: a redelivered event is skipped."""
    return Table(
        "inbox",
        metadata,
        Column("event_id", String(200), primary_key=True),
        Column("topic", String(100), nullable=False),
        Column("received_at", UtcDateTime(), nullable=False),
    )


def outbox_table(metadata: MetaData) -> Table:
    """Events written in the same transaction as the state they describe, then relayed."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigIntPK, primary_key=True, autoincrement=True),
        Column("event_id", String(200), nullable=False),
        Column("topic", String(100), nullable=False),
        Column("key", String(200), nullable=False),
        Column("value", LargeBinary(), nullable=False),
        Column("headers", LargeBinary(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("attempts", Integer(), nullable=False, default=0),
    )
