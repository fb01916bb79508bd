"""The whole notifier service: real broker, database, Twilio SDK over HTTP, ingest stand-in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from notifier.api import create_app
from notifier.config import NotifierSettings
from shared.bus import Producer
from shared.bus.broker import EmbeddedBroker
from shared.clock import AcceleratedClock, ManualClock
from shared.db import Database
from shared.events import CloudEvent, EventData, new_event
from shared.topics import NOTIFICATION_EVENTS
from tests.helpers import FAST_GROUP, header, read_topic, wait_for
from tests.notifier.conftest import local, make_signal
from tests.notifier.ingest_stub import IngestStub
from tests.notifier.twilio_server import (
    AUTH_TOKEN,
    MESSAGING_SERVICE_SID,
    FakeTwilio,
)

pytestmark = pytest.mark.slow


def _settings(db: Database, broker: EmbeddedBroker, twilio: FakeTwilio, ingest: IngestStub) -> Any:
    url = db.url.render_as_string(hide_password=False)
    if db.sqlite:
        url = url.replace(".notifier.db", ".db")
    return NotifierSettings(
        database_url=url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        notifier_twilio_account_sid=twilio.account_sid,
        notifier_twilio_auth_token=SecretStr(AUTH_TOKEN),
        notifier_twilio_messaging_service_sid=MESSAGING_SERVICE_SID,
        notifier_twilio_api_base_url=twilio.base_url,
        notifier_ingest_url=ingest.base_url,
        service_token=SecretStr(ingest.token),
        notifier_sender_interval_seconds=0.05,
        consumer_poll_ms=50,
        **FAST_GROUP_SETTINGS,
    )


FAST_GROUP_SETTINGS = {f"kafka_{k}": v for k, v in FAST_GROUP.items()}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


def _event(data: EventData, event_id: str, clock: ManualClock) -> CloudEvent[EventData]:
    return new_event(data, id=event_id, source="bokvar/rules", time=clock.now())


def _statuses(records: list[Any]) -> list[tuple[str, str]]:
    out = []
    for r in records:
        body = orjson.loads(r.value)
        out.append((header(r, "ce_type") or "", body.get("status", "")))
    return out


def _has(status: str) -> Callable[[list[Any]], bool]:
    return lambda records: any(s == status for _, s in _statuses(records))


async def test_signal_to_sms_once_with_events(
    broker: EmbeddedBroker,
    producer: Producer,
    db: Database,
    clock: ManualClock,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    app = create_app(_settings(db, broker, twilio, ingest), clock=clock)
    async with running(app):
        sig = make_signal()
        # the same event delivered twice, and the same signal under another event id
        await producer.publish_many(
            [_event(sig, "e1", clock), _event(sig, "e1", clock), _event(sig, "e2", clock)]
        )
        await wait_for(lambda: _async(len(twilio.messages) >= 1), what="an SMS")
        records = await read_topic(
            broker.bootstrap_servers, NOTIFICATION_EVENTS, until=_has("sent")
        )
        assert ("se.bokvar.notification.status_changed.v1", "queued") in _statuses(records)
        await app.state.sender.run_once()
    assert len(twilio.messages) == 1


async def test_arrears_cleared_cancels_deferred_send_end_to_end(
    broker: EmbeddedBroker,
    producer: Producer,
    db: Database,
    clock: ManualClock,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    clock.set(local(2026, 3, 3, 21, 30))
    app = create_app(_settings(db, broker, twilio, ingest), clock=clock)
    async with running(app):
        await producer.publish(_event(make_signal(), "e1", clock))
        await read_topic(broker.bootstrap_servers, NOTIFICATION_EVENTS, until=_has("deferred"))
        cleared = make_signal(signal="arrears_cleared", signal_id="L-1:2026-03:cleared")
        await producer.publish(_event(cleared, "e2", clock))
        await read_topic(broker.bootstrap_servers, NOTIFICATION_EVENTS, until=_has("cancelled"))
        clock.set(local(2026, 3, 4, 8, 30))
        await app.state.sender.run_once()
    assert twilio.messages == []


async def _async(value: Any) -> Any:
    return value


async def test_deferred_send_goes_out_at_08_on_an_accelerated_clock(
    broker: EmbeddedBroker,
    producer: Producer,
    db: Database,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    # 20:30 Monday; 3,600x: the 11.5 h until 08:00 pass in about 12 s
    clock = AcceleratedClock(local(2026, 3, 2, 20, 30), time.time(), 3600)
    app = create_app(_settings(db, broker, twilio, ingest), clock=clock)
    async with running(app):
        await producer.publish(new_event(make_signal(), id="e1", source="t", time=clock.now()))
        await wait_for(lambda: _async(len(twilio.messages) == 1), timeout=40, what="the SMS")
        records = await read_topic(
            broker.bootstrap_servers, NOTIFICATION_EVENTS, until=_has("sent")
        )
    sent = [orjson.loads(r.value) for r in records if orjson.loads(r.value)["status"] == "sent"]
    at = datetime.fromisoformat(sent[0]["at"]).astimezone(local(2026, 3, 3, 8, 0).tzinfo)
    assert at >= local(2026, 3, 3, 8, 0) and at.hour == 8
