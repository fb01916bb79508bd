"""HTTP API of the notifier service, and the wiring of its consumer and background loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import structlog
from fastapi import FastAPI, Request

from notifier import models
from notifier.channels import Channel, LogChannel, TwilioChannel
from notifier.config import NotifierSettings
from notifier.consumer import TOPICS, make_handler
from notifier.contacts import IngestContacts
from notifier.deps import NotifierState
from notifier.policy import load_policy
from notifier.sender import Sender
from notifier.staff_api import router as staff_router
from notifier.store import NotifierStore
from notifier.webhooks import router as webhook_router
from notifier.workflow import Context, escalate_overdue
from shared.clock import Clock
from shared.http import create_service_app, document_errors, health_router, install_error_handlers
from shared.runtime import Runtime, service_runtime

log = structlog.get_logger(__name__)


def build_channel(settings: NotifierSettings) -> Channel:
    """Return Twilio when its settings are complete, else the log channel."""
    s = settings
    if s.notifier_twilio_account_sid and s.notifier_twilio_auth_token:
        return TwilioChannel(
            account_sid=s.notifier_twilio_account_sid,
            auth_token=s.notifier_twilio_auth_token.get_secret_value(),
            messaging_service_sid=s.notifier_twilio_messaging_service_sid,
            from_number=s.notifier_twilio_from_number,
            api_base_url=s.notifier_twilio_api_base_url,
            timeout=s.notifier_http_timeout_seconds,
            workers=s.notifier_sender_concurrency,
        )
    log.warning("notifier.log_channel", detail="no Twilio settings: SMS are only logged")
    return LogChannel()


def build_sender(
    settings: NotifierSettings, rt: Runtime, ctx: Context, ingest: httpx.AsyncClient
) -> Sender:
    """Build the sender of this process."""
    return Sender(
        database=rt.database,
        ctx=ctx,
        channel=build_channel(settings),
        contacts=IngestContacts(ingest, settings.service_token.get_secret_value()),
        clock=rt.clock,
        phone_key=settings.notifier_phone_hash_key.get_secret_value().encode(),
        callback_url=settings.notifier_public_url.rstrip("/") + "/webhooks/twilio/status",
        batch=settings.notifier_sender_batch,
        concurrency=settings.notifier_sender_concurrency,
        reconcile_after=timedelta(seconds=settings.notifier_reconcile_after_seconds),
        relay=rt.relay,
    )


async def escalation_loop(rt: Runtime, ctx: Context, interval: float) -> None:
    """Escalate unacknowledged overdue tasks every `interval` seconds until stopping."""
    while not rt.stopping.is_set():
        try:
            async with rt.database.sessionmaker.begin() as session:
                count = await escalate_overdue(
                    NotifierStore(session, clock=rt.clock), ctx, rt.clock.now()
                )
            if count and rt.relay is not None:
                rt.relay.wake()
        except Exception as exc:
            log.warning("notifier.escalation_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.stopping.wait(), timeout=interval)


def install_routes(app: FastAPI) -> None:
    """Mount the staff API and the Twilio webhooks (they use `app.state.notifier`)."""
    install_error_handlers(app)
    app.include_router(staff_router)
    app.include_router(webhook_router)


def create_app(settings: NotifierSettings, *, clock: Clock | None = None) -> FastAPI:
    """Build the notifier app; its lifespan owns the database, producer, consumer and loops."""
    policy = load_policy(settings.notifier_policy_path, settings.notifier_templates_dir)
    ctx = Context(policy=policy, tz=ZoneInfo(settings.timezone))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the client is opened first so it outlives the loops the runtime stops on exit
        async with (
            httpx.AsyncClient(
                base_url=settings.notifier_ingest_url,
                timeout=settings.notifier_http_timeout_seconds,
            ) as ingest,
            service_runtime(settings, "notifier", clock=clock) as rt,
        ):
            app.state.rt = rt
            app.state.notifier = NotifierState(rt=rt, settings=settings, ctx=ctx)
            rt.outbox_relay(models.outbox)
            await rt.start_consumer(
                topics=TOPICS,
                handler=make_handler(ctx, rt.clock),
                inbox=models.inbox,
                outbox=models.outbox,
            )
            sender = build_sender(settings, rt, ctx, ingest)
            app.state.sender = sender
            rt.spawn(
                "sender",
                lambda: sender.run(rt.stopping, interval=settings.notifier_sender_interval_seconds),
            )
            rt.spawn(
                "escalation",
                lambda: escalation_loop(rt, ctx, settings.notifier_escalation_interval_seconds),
            )
            log.info("notifier.started", policy_version=policy.version, channel=sender.channel.name)
            yield

    app = create_service_app("notifier", title="Bokvar notifier", lifespan=lifespan)

    def checks(request: Request) -> dict[str, object]:
        rt: Runtime = request.app.state.rt

        async def broker() -> bool:
            return rt.producer_ready and await rt.producer.reachable()

        async def database() -> bool:
            await rt.database.ping()
            return True

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    install_routes(app)
    document_errors(app, conflicts=True)
    return app
