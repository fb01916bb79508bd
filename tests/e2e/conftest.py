"""Fixtures of the end-to-end tests: the whole pipeline as running processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from shared.bus.broker import EmbeddedBroker
from shared.db import Database
from tests.e2e.pipeline import Pipeline, drop_database, fresh_database_url
from tests.notifier.twilio_server import MESSAGING_SERVICE_SID, FakeTwilio, running_twilio

StartPipeline = Callable[..., "AsyncIterator[Pipeline]"]


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The local Twilio-compatible Messages API, reached through the real SDK."""
    with running_twilio() as fake:
        yield fake


@pytest.fixture
async def start_pipeline(
    broker: EmbeddedBroker, test_database_url: str, tmp_path: Path, twilio: FakeTwilio
) -> AsyncIterator[Callable[..., object]]:
    """Start the four services on the test broker, a fresh database and a shared clock."""
    started: list[tuple[Pipeline, str | None]] = []

    async def start(clock_start: datetime, speed: float = 1.0, **env: str) -> Pipeline:
        url, dbname = await fresh_database_url(test_database_url, tmp_path)
        pipeline = Pipeline(
            bootstrap_servers=broker.bootstrap_servers,
            database_url=url,
            var_dir=tmp_path / "var",
            clock_start=clock_start,
            clock_speed=speed,
            extra_env={
                "BOKVAR_NOTIFIER_TWILIO_ACCOUNT_SID": twilio.account_sid,
                "BOKVAR_NOTIFIER_TWILIO_AUTH_TOKEN": twilio.auth_token,
                "BOKVAR_NOTIFIER_TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
                "BOKVAR_NOTIFIER_TWILIO_API_BASE_URL": twilio.base_url,
                "BOKVAR_RULES_SWEEP_INTERVAL_SECONDS": "0.1",
                "BOKVAR_NOTIFIER_SENDER_INTERVAL_SECONDS": "0.1",
                "BOKVAR_NOTIFIER_ESCALATION_INTERVAL_SECONDS": "0.2",
                **env,
            },
        )
        started.append((pipeline, dbname))
        await pipeline.start()
        return pipeline

    yield start
    for pipeline, dbname in started:
        pipeline.stop()
        if dbname is not None:
            await drop_database(test_database_url, dbname)


async def api_key(pipeline: Pipeline, org: str) -> str:
    """Create an ERP API key for `org` in the pipeline's ingest database."""
    from ingest.clients import create_client

    database = Database(pipeline.database_url, "ingest")
    try:
        return await create_client(database, org, "e2e")
    finally:
        await database.dispose()
