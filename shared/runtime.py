"""What a running service owns: database, producer, clock, consumers, background loops.

A service's FastAPI lifespan does `async with service_runtime(settings, "rules") as rt:`,
registers its consumers and loops, and everything stops cleanly on shutdown (SIGTERM):
consumers finish their batch, loops see `rt.stopping`, the outbox is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Table

from shared.bus import ConsumerRunner, Handler, OutboxRelay, Producer
from shared.bus.broker import resolve_bootstrap_servers
from shared.clock import Clock, clock_from_settings
from shared.config import CommonSettings
from shared.db import Database
from shared.db.migrate import is_migrated

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """Resources of one service process."""

    service: str
    settings: CommonSettings
    clock: Clock
    database: Database
    producer: Producer
    bootstrap_servers: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    producer_ready: bool = False
    relay: OutboxRelay | None = None
    migrated: bool = False
    _runners: list[ConsumerRunner] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def migrations_applied(self) -> bool:
        """Tell whether the service's tables are migrated (checked until they are)."""
        if not self.migrated:
            self.migrated = await is_migrated(self.database)
        return self.migrated

    def outbox_relay(self, outbox: Table) -> OutboxRelay:
        """Create (once) the relay of the service's outbox and run it in the background."""
        if self.relay is None:
            self.relay = OutboxRelay(self.database, outbox, self.producer)
            self.spawn("outbox-relay", lambda: self.relay.run(self.stopping))  # type: ignore[union-attr]
        return self.relay

    async def start_consumer(
        self,
        *,
        topics: Sequence[str],
        handler: Handler,
        inbox: Table,
        outbox: Table | None = None,
        group_id: str | None = None,
        lanes: int = 1,
    ) -> ConsumerRunner:
        """Join the consumer group (default group: the service name) and run in the background.

        `lanes`: loops of the member, each fetching and applying its share of the
        partitions (`ConsumerRunner`).
        """
        s = self.settings
        runner = ConsumerRunner(
            service=self.service,
            group_id=group_id or self.service,
            topics=topics,
            bootstrap_servers=self.bootstrap_servers,
            database=self.database,
            inbox=inbox,
            handler=handler,
            producer=self.producer,
            clock=self.clock,
            outbox=outbox,
            relay=self.outbox_relay(outbox) if outbox is not None else None,
            batch_size=s.consumer_batch_size,
            poll_ms=s.consumer_poll_ms,
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            rebalance_timeout_ms=s.kafka_rebalance_timeout_ms,
            lanes=lanes,
        )
        self._runners.append(runner)

        async def run() -> None:
            await _retry_forever(runner.start, self.stopping, what="consumer.start")
            await runner.run()

        self.spawn(f"consumer-{group_id or self.service}", run)
        return runner

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; it must return once `stopping` is set."""

        async def guarded() -> None:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("runtime.task_crashed", service=self.service, task=name)
                raise

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    async def shutdown(self) -> None:
        """Stop consumers and loops, then release the resources."""
        self.stopping.set()
        for runner in self._runners:
            runner.stop()
        _, pending = await asyncio.wait(self._tasks, timeout=20) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.close()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.database.dispose()
        log.info("runtime.stopped", service=self.service)


async def _retry_forever(
    attempt: Callable[[], Awaitable[None]], stopping: asyncio.Event, *, what: str
) -> None:
    delay = 0.2
    while not stopping.is_set():
        try:
            await attempt()
            return
        except Exception as exc:
            log.warning("runtime.retrying", what=what, error=type(exc).__name__, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def service_runtime(
    settings: CommonSettings,
    service: str,
    *,
    clock: Clock | None = None,
    bootstrap_servers: str | None = None,
) -> AsyncIterator[Runtime]:
    """Open a service's resources; the producer connects in the background if the broker is down."""
    servers = bootstrap_servers or resolve_bootstrap_servers(
        settings.kafka_bootstrap_servers, settings.var_dir
    )
    rt = Runtime(
        service=service,
        settings=settings,
        clock=clock
        or clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed),
        database=Database(settings.database_url, service),
        producer=Producer(servers, client_id=f"{settings.kafka_client_id}-{service}"),
        bootstrap_servers=servers,
    )

    async def start_producer() -> None:
        await _retry_forever(rt.producer.start, rt.stopping, what="producer.start")
        rt.producer_ready = True

    try:
        await asyncio.wait_for(rt.producer.start(), timeout=10)
        rt.producer_ready = True
    except Exception as exc:
        log.warning("runtime.broker_unreachable", service=service, error=type(exc).__name__)
        rt.producer = Producer(servers, client_id=f"{settings.kafka_client_id}-{service}")
        rt.spawn("producer-start", start_producer)
    try:
        yield rt
    finally:
        await rt.shutdown()
