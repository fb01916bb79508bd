"""Ingest's request work: authenticate, load state, publish (acks=all), then record."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
import structlog
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError

from ingest.clients import hash_key
from ingest.config import IngestSettings
from ingest.pipeline import Item, Outcome, process, referenced
from ingest.processing import Context, Known
from ingest.schemas import ContactRead, LeaseContacts
from ingest.store import IngestStore
from ingest.watermark import fan_out, has_watermark
from shared.bus.producer import Prepared
from shared.db.errors import is_unique_violation
from shared.http import NotFound, ServiceUnavailable, Unauthorized
from shared.runtime import Runtime
from shared.topics import LEDGER_EVENTS

log = structlog.get_logger(__name__)

EVENTS = Counter(
    "bokvar_ingest_events_total",
    "ERP events by type and outcome (accepted, duplicate, rejected).",
    ["type", "outcome"],
)
AUTH_CACHE_SECONDS = 30.0
# tries of a batch whose write met a row another request stored since the lookup
WRITE_ATTEMPTS = 3


class Ingestor:
    """The ingest pipeline of one process (state: an API-key cache)."""

    def __init__(self, rt: Runtime, settings: IngestSettings) -> None:
        self.rt = rt
        self.settings = settings
        self._secret = settings.ingest_pseudonym_secret.get_secret_value().encode()
        self._keys: dict[str, tuple[str, float]] = {}
        # organisations whose last batch repeated a stored event id: their batches look
        # the ids up before processing (the others insert them and meet a repeat as a
        # unique violation, see `ingest`)
        self._repeating: set[str] = set()

    async def authenticate(self, key: str | None) -> str:
        """Return the organisation of an API key; raise Unauthorized when missing or wrong."""
        if not key:
            raise Unauthorized("missing API key (header X-API-Key)")
        digest = hash_key(key)
        cached = self._keys.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.rt.database.sessionmaker() as session:
            found = await IngestStore(session).client_org(digest)
        if found is None or not hmac.compare_digest(found[1], digest):
            raise Unauthorized("wrong API key")
        self._keys[digest] = (found[0], time.monotonic() + AUTH_CACHE_SECONDS)
        return found[0]

    async def ingest(self, org_id: str, items: list[Item]) -> Outcome:
        """Process items: record, publish (acks=all), commit; 503 if broker or database is away.

        The event ids are stored with a plain INSERT, so an id already stored fails the
        write before anything is published (IntegrityError). The batch is then processed
        again, its ids looked up first, so that id is a duplicate (or a conflict) like any
        id seen before. That lets a batch skip the lookup of its event ids (one index
        lookup per id) unless its organisation's last batch repeated a stored id; the
        same retry covers a request that stored one of the ids (or a lease's contacts)
        after this one's lookup.
        """
        now = self.rt.clock.now()
        referenced_ids = referenced(items)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            look_up = attempt > 1 or org_id in self._repeating
            try:
                outcome, repeated = await self._attempt(org_id, items, now, referenced_ids, look_up)
                break
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
                self._repeating.add(org_id)
                log.info("ingest.write_conflict", org_id=org_id, attempt=attempt)
        else:  # every try met an id stored meanwhile: busy, not broken
            raise ServiceUnavailable(
                "concurrent requests kept storing this batch's event ids; nothing was "
                "recorded, retry later",
                headers={"Retry-After": str(self.settings.ingest_retry_after_seconds)},
            )
        if not repeated:
            self._repeating.discard(org_id)
        self._count(items, outcome.statuses)
        log.info(
            "ingest.batch",
            org_id=org_id,
            events=len(items),
            accepted=outcome.statuses.count("accepted"),
            duplicates=outcome.statuses.count("duplicate"),
            rejected=outcome.statuses.count("rejected"),
        )
        return outcome

    async def _attempt(
        self,
        org_id: str,
        items: list[Item],
        now: datetime,
        ids: tuple[set[str], set[str], set[str], set[str]],
        look_up: bool,
    ) -> tuple[Outcome, bool]:
        """Look up what the batch refers to (its event ids if `look_up`), process it,
        store, publish, commit; return the outcome and whether an id was found stored."""
        ctx = Context(org_id=org_id, now=now, secret=self._secret)
        known = await self._load_known(org_id, ids, now, look_up)
        found = bool(known.seen or known.expired)  # before process adds the batch's ids
        outcome = process(items, ctx, known)
        if not look_up and await self._rejected_stored(org_id, items, outcome, now):
            known = await self._load_known(org_id, ids, now, True)
            found = bool(known.seen or known.expired)
            outcome = process(items, ctx, known)
        if outcome.events:
            # Store first (a refused write publishes nothing), publish within the open
            # transaction, commit once the broker acknowledged: 503 leaves neither. The
            # records are encoded while the write runs (about the same time for each),
            # and sent only once it succeeded.
            async with self.rt.database.sessionmaker() as session, session.begin():
                store = IngestStore(session)
                write = asyncio.ensure_future(
                    store.apply(org_id, outcome.writes, now, expired=known.expired)
                )
                try:
                    prepared = await self._prepare(outcome)
                except BaseException as exc:
                    if not isinstance(exc, Exception):  # the request itself is cancelled
                        write.cancel()
                    await asyncio.wait([write])  # then rolled back with the transaction
                    if not write.cancelled():
                        write.exception()  # retrieved: `exc` is the answer
                    raise
                await write
                await self._send(prepared, len(outcome.events))
        return outcome, found

    async def _rejected_stored(
        self, org_id: str, items: list[Item], outcome: Outcome, now: datetime
    ) -> bool:
        """Tell whether an item rejected after validation has a stored event id.

        A stored id is answered duplicate (or 409) before its body is translated, so
        such an item's answer needs the lookup. The other items' answers do not change
        with it (a rejected item registers nothing), and their ids are checked by the
        insert.
        """
        rejected = {
            item.event_id
            for item, status in zip(items, outcome.statuses, strict=True)
            if status == "rejected" and item.body is not None and item.event_id is not None
        }
        if not rejected:
            return False
        stored = await self._load_known(org_id, (set(), set(), set(), rejected), now, True)
        return bool(stored.seen or stored.expired)

    async def _load_known(
        self,
        org_id: str,
        ids: tuple[set[str], set[str], set[str], set[str]],
        now: datetime,
        look_up: bool,
    ) -> Known:
        """What `load_known` returns for the batch's ids (its event ids if `look_up`)."""
        leases, ocrs, complaints, event_ids = ids
        async with self.rt.database.sessionmaker() as session:
            return await IngestStore(session).load_known(
                org_id,
                lease_ids=leases,
                ocrs=ocrs,
                complaint_ids=complaints,
                event_ids=event_ids if look_up else set(),
                seen_since=now - timedelta(days=self.settings.ingest_dedup_window_days),
            )

    async def _prepare(self, outcome: Outcome) -> Prepared:
        """Encode the outcome's events into record batches (`Producer.prepare`), the
        watermarks fanned out; 503 when the broker is away."""
        if not self.rt.producer_ready:
            raise ServiceUnavailable("the event broker is unreachable", headers=self._retry())
        events = outcome.events
        try:
            if has_watermark(events):  # one copy per partition (ingest/watermark.py)
                events = fan_out(events, await self.rt.producer.partitions(LEDGER_EVENTS))
            return await asyncio.wait_for(
                self.rt.producer.prepare(events),
                timeout=self.settings.ingest_publish_timeout_seconds,
            )
        except Exception as exc:
            raise self._unacknowledged(exc, len(outcome.events)) from exc

    async def _send(self, prepared: Prepared, events: int) -> None:
        """Send the prepared batches and wait for every acknowledgement (acks=all)."""
        try:
            await asyncio.wait_for(
                self.rt.producer.send_prepared(prepared),
                timeout=self.settings.ingest_publish_timeout_seconds,
            )
        except Exception as exc:
            raise self._unacknowledged(exc, events) from exc

    def _retry(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.ingest_retry_after_seconds)}

    def _unacknowledged(self, exc: Exception, events: int) -> ServiceUnavailable:
        log.warning("ingest.publish_failed", error=type(exc).__name__, events=events)
        return ServiceUnavailable(
            "the event broker did not acknowledge; nothing was recorded, retry later",
            headers=self._retry(),
        )

    @staticmethod
    def _count(items: Sequence[Item], statuses: Sequence[str]) -> None:
        tally = collections.Counter(zip([item.kind for item in items], statuses, strict=True))
        for (kind, status), n in tally.items():
            EVENTS.labels(type=kind, outcome=status).inc(n)

    async def contacts(self, lease_id: str) -> LeaseContacts:
        """Return the contacts of a lease's tenants; NotFound for an unknown lease."""
        async with self.rt.database.sessionmaker() as session:
            found = await IngestStore(session).lease_contacts(lease_id)
        if found is None:
            raise NotFound("unknown lease")
        org_id, rows = found
        tenants = [
            ContactRead(
                tenant_id=r.tenant_id, phone=r.phone, language=r.language, opted_out=r.opted_out
            )
            for r in rows
        ]
        return LeaseContacts(lease_id=lease_id, org_id=org_id, tenants=tenants)

    async def purge_loop(self) -> None:
        """Forget event ids older than the dedup window, hourly, until the service stops."""
        while not self.rt.stopping.is_set():
            before = self.rt.clock.now() - timedelta(days=self.settings.ingest_dedup_window_days)
            try:
                async with self.rt.database.sessionmaker() as session, session.begin():
                    removed = await IngestStore(session).purge_seen(before)
                log.info("ingest.seen_purged", removed=removed)
            except Exception as exc:
                log.warning("ingest.purge_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.rt.stopping.wait(), timeout=3600)


def batch_result(items: Sequence[Item], outcome: Outcome) -> bytes:
    """Return the per-item answer of a batch as JSON (the shape of `BatchResult`).

    Built as plain dicts and serialised with orjson: a 10,000-event answer would
    otherwise cost a pydantic model per item.
    """
    results = [
        {
            "index": item.index,
            "event_id": item.event_id,
            "status": status,
            "errors": [{"field": e.field, "reason": e.reason} for e in errors] if errors else [],
        }
        for item, status, errors in zip(items, outcome.statuses, outcome.errors, strict=True)
    ]
    return orjson.dumps(
        {
            "accepted": outcome.statuses.count("accepted"),
            "duplicates": outcome.statuses.count("duplicate"),
            "rejected": outcome.statuses.count("rejected"),
            "results": results,
        }
    )
