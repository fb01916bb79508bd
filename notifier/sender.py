"""The sender loop: picks due SMS, sends them once, and reconciles attempts cut by a crash.

One send is three steps. (1) In one transaction: re-check everything (contact, opt-out,
quiet hours, weekly cap) and CLAIM the row (`queued|deferred` -> `sending` with a fresh
attempt id) unless the lease's arrears were cleared; a cancellation racing with the claim
loses or wins atomically, never both. (2) Call the provider. (3) Record the SID. A crash
between (2) and (3) leaves the row in `sending`: on the next pass after
`reconcile_after`, the provider is asked for a message with this body to this number since
the attempt started; found -> recorded as sent, otherwise a `reconcile_send` staff task is
opened and the row goes to `unknown`. Nothing is ever sent twice automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from notifier import engine
from notifier.channels import Channel, ChannelError, SendResult
from notifier.contacts import ContactsUnavailable, IngestContacts, TenantContact
from notifier.metrics import PROVIDER_SECONDS, SMS_OUTCOMES
from notifier.store import PENDING, NotifierStore
from notifier.workflow import (
    ANY_TENANT,
    Context,
    expand_any_tenant,
    fallback_task,
    open_task,
    stage_notification,
)
from shared.bus import OutboxRelay
from shared.clock import Clock
from shared.db import Database

log = structlog.get_logger(__name__)


class RateLimiter:
    """Token bucket in real time: at most `rate` sends per second per sender, bursts of 1s."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = max(rate, 1.0)
        self._last = time.monotonic()

    async def acquire(self) -> None:
        """Wait until a send is allowed."""
        while True:
            now = time.monotonic()
            self._tokens = min(max(self.rate, 1.0), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self.rate)


@dataclass
class Recipient:
    """Who an SMS goes to, resolved at send time."""

    phone: str | None
    language: str | None = None
    tenant_id: str | None = None
    opted_out: bool = False


@dataclass
class Sender:
    """Sends due notifications through a channel; one instance per service process."""

    database: Database
    ctx: Context
    channel: Channel
    contacts: IngestContacts
    clock: Clock
    phone_key: bytes
    callback_url: str | None
    batch: int = 100
    #: SMS in flight at once (PostgreSQL; on SQLite one at a time): the rate limit applies
    #: to all of them together
    concurrency: int = 4
    reconcile_after: timedelta = timedelta(seconds=120)
    relay: OutboxRelay | None = None
    rng: random.Random = field(default_factory=random.Random)
    #: Test hook: runs after the provider accepted a message, before it is recorded.
    after_provider_call: Callable[[], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        # The per-sender rate is the provider's limit; the log channel has none, and on an
        # accelerated simulation clock a real-time limit would starve everything behind it.
        self.limiter: RateLimiter | None = (
            None
            if self.channel.name == "log"
            else RateLimiter(self.ctx.policy.sender_rate_per_second)
        )

    async def run(self, stopping: asyncio.Event, *, interval: float) -> None:
        """Send and reconcile every `interval` seconds until `stopping` is set."""
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("notifier.sender_pass_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval)

    async def run_once(self) -> int:
        """Reconcile interrupted attempts, then send what is due; return how many were sent."""
        await self.reconcile()
        async with self.database.sessionmaker() as session:
            due = await NotifierStore(session, clock=self.clock).due_notifications(
                self.clock.now(), limit=self.batch
            )
        sent = await self._send_due([row.id for row in due])
        if self.relay is not None:
            self.relay.wake()
        return sent

    async def _send_due(self, ids: list[str]) -> int:
        """Send `ids` in order, up to `concurrency` at once (one at a time on SQLite).

        Each send is its own claim, provider call and record, as one at a time; the rate
        limiter paces them all together, and a tenant's weekly cap is checked and claimed
        under the tenant's lock, counting sends in flight (`NotifierStore.lock_tenant`).
        Once ingest is found down, no further send starts (the rest wait for the next
        pass); an error in one send does not cancel the others (a provider call cut off
        would be left for reconciliation): it is raised once all have finished.
        """
        width = 1 if self.database.sqlite else max(1, self.concurrency)
        if width == 1:
            sent = 0
            for notification_id in ids:
                try:
                    sent += await self.send_one(notification_id)
                except ContactsUnavailable:
                    break  # ingest is down: leave the rest for the next pass
            return sent
        gate = asyncio.Semaphore(width)
        down = False

        async def one(notification_id: str) -> int:
            nonlocal down
            async with gate:
                if down:
                    return 0
                try:
                    return await self.send_one(notification_id)
                except ContactsUnavailable:
                    down = True
                    return 0

        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        return sum(r for r in results if isinstance(r, int))

    async def _resolve(self, row: Any) -> Recipient | None:
        """Look the phone up now (ingest for tenants, the directory for staff)."""
        if row.recipient_kind == "staff":
            async with self.database.sessionmaker() as session:
                member = await NotifierStore(session, clock=self.clock).get_staff(row.recipient_id)
            return Recipient(phone=member.phone if member and member.active else None)
        contacts = await self.contacts.get(row.lease_id)
        if contacts is None:
            return None
        chosen: TenantContact | None = None
        for tenant in contacts.tenants:
            if row.recipient_id == tenant.tenant_id or (
                row.recipient_id == ANY_TENANT and tenant.phone and chosen is None
            ):
                chosen = tenant
        if chosen is None:
            return Recipient(phone=None)
        return Recipient(chosen.phone, chosen.language, chosen.tenant_id, chosen.opted_out)

    async def send_one(self, notification_id: str) -> int:
        """Try to send one notification; return 1 if the provider accepted it.

        Raises ContactsUnavailable (after postponing the row) when ingest cannot be asked.
        """
        async with self.database.sessionmaker() as session:
            row = await NotifierStore(session, clock=self.clock).get_notification(notification_id)
        if row is None or row.status not in PENDING:
            return 0
        try:
            split = await self._split_per_tenant(row)
            if split is not None:
                return sum([await self.send_one(new_id) for new_id in split])
            recipient = await self._resolve(row)
        except ContactsUnavailable as exc:
            log.warning("notifier.contacts_unavailable", error=str(exc), lease_id=row.lease_id)
            await self._postpone(row, engine.retry_delay(1, self.ctx.policy.retry, self.rng))
            raise
        claimed = await self._claim(row, recipient)
        if claimed is None:
            return 0
        body, to = claimed
        return await self._call_provider(row.id, to=to, body=body)

    async def _split_per_tenant(self, row: Any) -> list[str] | None:
        """Split a notification for any tenant ("*") into one per tenant ingest knows.

        Returns the new ids, or None when the row is not for any tenant or ingest knows
        no tenants of the lease (the row then takes the usual path).
        """
        if row.recipient_kind != "tenant" or row.recipient_id != ANY_TENANT:
            return None
        contacts = await self.contacts.get(row.lease_id)
        if contacts is None or not contacts.tenants:
            return None
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            tenant_ids = [t.tenant_id for t in contacts.tenants]
            return await expand_any_tenant(store, row, tenant_ids, now=self.clock.now())

    async def _postpone(self, row: Any, delay: timedelta) -> None:
        now = self.clock.now()
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            await store.update_notification(
                row.id, where_status=PENDING, due_at=now + delay, updated_at=now
            )

    async def _claim(self, row: Any, recipient: Recipient | None) -> tuple[str, str] | None:
        """Check and claim in ONE transaction; return (body, phone) if we may send."""
        now = self.clock.now()
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            blocked = await self._blocked(store, row, recipient, now)
            if blocked or recipient is None or recipient.phone is None:
                return None
            attempt_id = uuid.uuid4().hex
            claimed = await store.claim(row.id, attempt_id=attempt_id, now=now)
            if claimed is None:
                log.info("notifier.send_not_claimed", notification_id=row.id)
                return None
            body, language = self._render(row, recipient)
            resolved = recipient.tenant_id if row.recipient_id == ANY_TENANT else None
            await store.update_notification(
                row.id,
                recipient_id=resolved or row.recipient_id,
                channel=self.channel.name,
                language=language,
                phone_masked=engine.mask_phone(recipient.phone),
                phone_hash=engine.phone_hash(recipient.phone, self.phone_key),
                body_hash=engine.body_hash(body),
            )
            return body, recipient.phone

    def _render(self, row: Any, recipient: Recipient) -> tuple[str, str]:
        policy = self.ctx.policy
        language, text = policy.template(
            recipient.language or policy.default_language, row.template
        )
        contact = policy.contact(row.org_id)
        variables = {
            **row.variables,
            "landlord_name": contact.name,
            "landlord_phone": contact.phone,
            "landlord_email": contact.email or "-",
        }
        return engine.render(text, variables), language

    async def _blocked(
        self, store: NotifierStore, row: Any, recipient: Recipient | None, now: datetime
    ) -> bool:
        """Apply every reason not to send now; True when the row was handled otherwise."""
        if row.signal_id and await store.retracted([row.signal_id]):
            await self._finish(store, row, now, status="cancelled", detail="signal_retracted")
            return True
        if recipient is None:
            await self._finish(store, row, now, status="failed", detail="lease_unknown")
            return True
        if recipient.phone is None:
            kind = "letter" if row.recipient_kind == "tenant" else None
            await self._finish(store, row, now, status="failed", detail="no_phone", task=kind)
            return True
        if row.recipient_kind != "tenant":
            return False
        hashed = engine.phone_hash(recipient.phone, self.phone_key)
        if recipient.opted_out or await store.is_opted_out(
            phone_hash=hashed, tenant_id=recipient.tenant_id
        ):
            await self._finish(
                store, row, now, status="cancelled", detail="opted_out", task="phone_call"
            )
            return True
        allowed = engine.next_allowed_send(now, self.ctx.policy.quiet(row.org_id))
        if allowed <= now:
            tenant = recipient.tenant_id or row.recipient_id  # "*" resolved at send time
            await store.lock_tenant(row.org_id, tenant)  # until this claim commits
            sent = await store.sent_times(
                org_id=row.org_id, tenant_id=tenant, since=now - timedelta(days=7)
            )
            cap = self.ctx.policy.weekly_cap(row.org_id)
            allowed = engine.week_cap_release(sent, now=now, cap=cap)
        if allowed > now:
            updated = await store.update_notification(
                row.id, where_status=PENDING, status="deferred", due_at=allowed, updated_at=now
            )
            if updated is not None and row.status != "deferred":
                await stage_notification(store, updated, now)
                SMS_OUTCOMES.labels(self.channel.name, "deferred").inc()
            return True
        return False

    async def _finish(
        self,
        store: NotifierStore,
        row: Any,
        now: datetime,
        *,
        status: str,
        detail: str,
        task: str | None = None,
        where: tuple[str, ...] = PENDING,
    ) -> None:
        updated = await store.update_notification(
            row.id, where_status=where, status=status, detail=detail, updated_at=now
        )
        if updated is None:
            return
        await stage_notification(store, updated, now)
        if task is not None:
            await fallback_task(store, self.ctx, updated, kind=task, now=now)
        SMS_OUTCOMES.labels(self.channel.name, status).inc()
        log.info("notifier.send_stopped", notification_id=row.id, status=status, reason=detail)

    async def _call_provider(self, notification_id: str, *, to: str, body: str) -> int:
        async with self.database.sessionmaker() as session:
            row = await NotifierStore(session, clock=self.clock).get_notification(notification_id)
        assert row is not None
        callback = f"{self.callback_url}?attempt={row.attempt_id}" if self.callback_url else None
        if self.limiter is not None:
            await self.limiter.acquire()  # per-sender rate: due rows wait here, in order
        try:
            with PROVIDER_SECONDS.labels(self.channel.name).time():
                result = await self.channel.send(to=to, body=body, status_callback=callback)
        except ChannelError as exc:
            await self._failed(row, exc)
            return 0
        if self.after_provider_call is not None:
            await self.after_provider_call()
        await self._record_sent(row, result)
        return 1

    async def _record_sent(self, row: Any, result: SendResult) -> None:
        now = self.clock.now()
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            updated = await store.update_notification(
                row.id,
                where_status=("sending", "unknown"),
                status="sent",
                provider_sid=result.sid,
                sent_at=now,
                updated_at=now,
            )
            if updated is None:  # a delivery receipt got there first: keep its status
                await store.update_notification(row.id, provider_sid=result.sid, sent_at=now)
                return
            await stage_notification(store, updated, now)
        SMS_OUTCOMES.labels(self.channel.name, "sent").inc()
        log.info("notifier.sms_sent", notification_id=row.id, channel=self.channel.name)

    async def _failed(self, row: Any, exc: ChannelError) -> None:
        now = self.clock.now()
        failure = engine.classify_error(exc.status, exc.code)
        policy = self.ctx.policy.retry
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            if failure.kind == "retry" and row.attempts < policy.max_attempts:
                delay = engine.retry_delay(row.attempts, policy, self.rng)
                await store.update_notification(
                    row.id,
                    where_status=("sending",),
                    status="queued",
                    due_at=now + delay,
                    detail=failure.detail,
                    updated_at=now,
                )
                SMS_OUTCOMES.labels(self.channel.name, "retry").inc()
                log.info("notifier.send_retry", notification_id=row.id, detail=failure.detail)
                return
            if failure.opted_out and row.phone_hash:
                await store.set_opt_out(
                    phone_hash=row.phone_hash,
                    tenant_id=row.recipient_id if row.recipient_id != ANY_TENANT else None,
                    lease_id=row.lease_id,
                    opted_out=True,
                    keyword="provider_21610",
                    now=now,
                )
            await self._finish(
                store,
                row,
                now,
                status="failed",
                detail=failure.detail,
                task="phone_call",
                where=("sending",),
            )

    async def reconcile(self) -> int:
        """Settle attempts left in `sending` by a crash; never resend them."""
        now = self.clock.now()
        async with self.database.sessionmaker() as session:
            stale = await NotifierStore(session, clock=self.clock).stale_sending(
                now - self.reconcile_after
            )
        for row in stale:
            await self._reconcile_one(row)
        return len(stale)

    async def _reconcile_one(self, row: Any) -> None:
        found: SendResult | None = None
        try:
            recipient = await self._resolve(row)
            if recipient is not None and recipient.phone and row.body_hash:
                found = await self.channel.find_sent(
                    to=recipient.phone,
                    since=row.attempt_started_at - timedelta(minutes=5),
                    body_sha=row.body_hash,
                )
        except (ContactsUnavailable, ChannelError) as exc:
            log.warning("notifier.reconcile_lookup_failed", error=type(exc).__name__)
        if found is not None:
            await self._record_sent(row, found)
            SMS_OUTCOMES.labels(self.channel.name, "reconciled").inc()
            log.info("notifier.reconciled_sent", notification_id=row.id)
            return
        now = self.clock.now()
        async with self.database.sessionmaker.begin() as session:
            store = NotifierStore(session, clock=self.clock)
            updated = await store.update_notification(
                row.id,
                where_status=("sending",),
                status="unknown",
                detail="outcome_unknown_after_crash",
                updated_at=now,
            )
            if updated is None:
                return
            lease = await store.get_lease(row.lease_id)
            await open_task(
                store,
                self.ctx,
                task_id=f"reconcile_send:{row.id}:{row.attempt_id}",
                kind="reconcile_send",
                lease_id=row.lease_id,
                org_id=row.org_id,
                team=lease.team if lease is not None else None,
                signal_id=row.signal_id,
                notification_id=row.id,
                now=now,
                alert=False,
            )
        SMS_OUTCOMES.labels(self.channel.name, "unknown").inc()
        log.warning("notifier.reconcile_task_opened", notification_id=row.id)
