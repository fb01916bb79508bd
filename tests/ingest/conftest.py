"""Fixtures of the ingest tests: the app with its lifespan on the test broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ingest.api import create_app
from ingest.clients import create_client
from ingest.config import IngestSettings
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from shared.db import Database
from tests.conftest import MakeDatabase
from tests.pii import register_literal, register_name

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SERVICE_TOKEN = "test-service-token"
PNR = "811228-9874"  # Skatteverket's example number: born 1981-12-28, male


def base_url(db: Database, tmp_path: Path) -> str:
    """Return the database URL that makes `Database(url, "ingest")` open `db`'s data."""
    if db.sqlite:
        return f"sqlite+aiosqlite:///{Path(db.url.database or '').parent}/bokvar.db"
    return db.url.render_as_string(hide_password=False)


@dataclass
class Ingest:
    """The running ingest app and what tests need around it."""

    app: FastAPI
    http: httpx.AsyncClient
    broker: EmbeddedBroker
    database: Database
    settings: IngestSettings
    clock: ManualClock
    key: str
    other_key: str

    async def post(self, path: str, body: Any, *, key: str | None = None) -> httpx.Response:
        """POST JSON with org1's key (or `key`)."""
        return await self.http.post(path, json=body, headers={"X-API-Key": key or self.key})


def settings_for(
    broker: EmbeddedBroker, db: Database, tmp_path: Path, **extra: Any
) -> IngestSettings:
    """Return ingest settings pointing at the test broker and database."""
    return IngestSettings(
        database_url=base_url(db, tmp_path),
        kafka_bootstrap_servers=broker.bootstrap_servers,
        var_dir=tmp_path,
        service_token=SERVICE_TOKEN,
        ingest_publish_timeout_seconds=3.0,
        **extra,
    )


@pytest.fixture
async def ingest(
    broker: EmbeddedBroker, make_database: MakeDatabase, tmp_path: Path
) -> AsyncIterator[Ingest]:
    """The ingest app, lifespan entered, with API keys for org1 and org2."""
    db = await make_database("ingest")
    settings = settings_for(broker, db, tmp_path)
    clock = ManualClock(NOW)
    app = create_app(settings, clock=clock)
    key = await create_client(db, "org1", "ERP one")
    other = await create_client(db, "org2", "ERP two")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            yield Ingest(app, http, broker, db, settings, clock, key, other)


def lease_body(
    lease_id: str = "L-1",
    event_id: str = "e-lease-1",
    *,
    name: str = "Anna Andersson",
    pnr: str = PNR,
    phone: str | None = "070-123 45 67",
    **extra: Any,
) -> dict[str, Any]:
    """Return a valid lease body (the tenant's name and personnummer are registered as PII)."""
    register_name(name)
    register_literal(pnr)
    register_literal(pnr.replace("-", "").replace("+", ""))
    body: dict[str, Any] = {
        "event_id": event_id,
        "lease_id": lease_id,
        "property_id": "P-1",
        "area": "Rinkeby",
        "municipality_code": "0180",
        "monthly_rent_ore": 850000,
        "start_date": "2024-04-01",
        "team": "team-north",
        "household_type": "single_adult",
        "tenants": [
            {
                "tenant_id": "T-1",
                "personnummer": pnr,
                "phone": phone,
                "language": "sv",
                "name": name,
            }
        ],
    }
    body.update(extra)
    return body
