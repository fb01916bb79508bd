"""ERP API clients: keys are random, shown once, and stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from ingest.store import IngestStore
from shared.db import Database
from shared.events.base import OrgId

KEY_PREFIX = "bkv_"
OrgIdAdapter: TypeAdapter[str] = TypeAdapter(OrgId)


def hash_key(key: str) -> str:
    """Return the stored form of an API key (SHA-256 hex; keys carry 256 random bits)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """Return a fresh API key: `bkv_` and 32 random bytes, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_client(
    database: Database, org_id: str, name: str, *, now: datetime | None = None
) -> str:
    """Create an API client for `org_id` and return its key (the only time it is shown)."""
    OrgIdAdapter.validate_python(org_id)
    key = new_key()
    async with database.sessionmaker() as session, session.begin():
        await IngestStore(session).create_client(
            org_id=org_id,
            name=name,
            key_hash=hash_key(key),
            key_prefix=key[:12],
            now=now or datetime.now(UTC),
        )
    return key


async def list_clients(database: Database, org_id: str | None = None) -> list[Any]:
    """Every API client (of `org_id`): id, org, name, key prefix, created, revoked."""
    async with database.sessionmaker() as session:
        return await IngestStore(session).list_clients(org_id)


async def revoke_client(
    database: Database, client_id: int, *, now: datetime | None = None
) -> Any | None:
    """Revoke an API client: its key is refused from then on (by every ingest process
    within `ingest.service.AUTH_CACHE_SECONDS`, which caches a key's organisation).
    Return the client, or None when there is no such client."""
    async with database.sessionmaker() as session, session.begin():
        return await IngestStore(session).revoke_client(client_id, now or datetime.now(UTC))
