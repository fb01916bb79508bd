"""Fixtures of the cases tests: a running cases app on a real database and broker, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.cases.api import create_app
from services.cases.config import CasesSettings
from shared.auth import encode_token
from shared.bus import create_topics
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from shared.db import Database
from shared.events import SignalRaised, new_event
from shared.events.signal import RiskScore
from tests.conftest import MakeDatabase
from tests.helpers import FAST_GROUP

SECRET = "test-secret-for-cases-0123456789abcdef"
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
ORG = "org1"
KOMMUN = "0180"


@pytest.fixture(scope="module")
async def module_broker() -> AsyncIterator[EmbeddedBroker]:
    """One embedded broker for a module's API tests (they do not consume)."""
    embedded = EmbeddedBroker()
    embedded.start()
    try:
        await create_topics(embedded.bootstrap_servers, partitions=3)
        yield embedded
    finally:
        embedded.stop()


@dataclass
class App:
    """A running cases app and what tests need around it."""

    app: FastAPI
    client: httpx.AsyncClient
    clock: ManualClock
    database: Database

    def token(
        self,
        role: str,
        *,
        org: str | None = ORG,
        municipality: str | None = KOMMUN,
        sub: str = "u1",
        **extra: Any,
    ) -> dict[str, str]:
        """Return headers with a bearer JWT for `role`."""
        claims: dict[str, Any] = {"sub": sub, "role": role, **extra}
        if org is not None:
            claims["org"] = org
        if municipality is not None:
            claims["municipality"] = municipality
        token = encode_token(claims, SECRET, now=self.clock.now())
        return {"Authorization": f"Bearer {token}", "X-Audit-Reason": "test"}


def database_url(test_database_url: str, tmp_path: Path) -> str:
    """Return the URL that points the app at the database make_database prepared."""
    if test_database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/bokvar.db"
    return test_database_url


@asynccontextmanager
async def running_app(
    db_url: str, bootstrap: str, *, consume: bool = False, **overrides: Any
) -> AsyncIterator[App]:
    """Run the cases app (lifespan included) and an in-process client against it."""
    settings = CasesSettings(
        database_url=db_url,
        cases_jwt_secret=SECRET,  # type: ignore[arg-type]
        cases_consume=consume,
        kafka_session_timeout_ms=FAST_GROUP["session_timeout_ms"],
        kafka_heartbeat_interval_ms=FAST_GROUP["heartbeat_interval_ms"],
        kafka_rebalance_timeout_ms=FAST_GROUP["rebalance_timeout_ms"],
        consumer_poll_ms=50,
        **overrides,
    )
    clock = ManualClock(NOW)
    app = create_app(settings, clock=clock, bootstrap_servers=bootstrap)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cases") as client:
            yield App(app, client, clock, app.state.rt.database)


@pytest.fixture
async def cases_app(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    module_broker: EmbeddedBroker,
) -> AsyncIterator[App]:
    """A cases app with no consumer, on a fresh migrated database."""
    await make_database("cases")
    async with running_app(
        database_url(test_database_url, tmp_path), module_broker.bootstrap_servers
    ) as running:
        yield running


def signal(
    lease_id: str,
    name: str,
    *,
    stage: str | None = None,
    at: datetime = NOW,
    due: Any = None,
    org: str = ORG,
    score: int = 50,
) -> Any:
    """Return a SignalRaised CloudEvent with a deterministic id."""
    signal_id = f"{lease_id}:2026-03:{stage or name}"
    data = SignalRaised(
        lease_id=lease_id,
        org_id=org,
        signal_id=signal_id,
        signal=name,  # type: ignore[arg-type]
        rule=name,
        policy_version="test",
        occurred_at=at,
        due_date=due,
        risk=RiskScore(score=score),
        reason_sv="test",
        reason_en=f"{name} for test",
    )
    return new_event(data, id=f"sig:{signal_id}", source="test", time=at)


OpenCase = Callable[..., Awaitable[str]]


async def open_case(
    db: Database, lease_id: str = "L-1", *, org: str = ORG, municipality: str | None = KOMMUN
) -> str:
    """Open a case directly through the consumer's code path (no broker) and return its id."""
    from services.cases import actions
    from services.cases.store import CasesStore

    async with db.sessionmaker() as session, session.begin():
        store = CasesStore(session)
        if municipality is not None:
            await store.upsert_household(
                {
                    "lease_id": lease_id,
                    "org_id": org,
                    "municipality_code": municipality,
                    "household_type": "single_adult",
                    "age_band": "25-29",
                    "gender": "male",
                    "updated_at": NOW - timedelta(days=30),
                }
            )
        event = signal(lease_id, "forfeiture_possible", org=org)

        async def emit(_: Any) -> None:
            return None

        await actions.on_signal(store, event.id, event.data, now=NOW, emit=emit)
        case = await store.open_case(lease_id)
        assert case is not None
        return str(case["id"])
