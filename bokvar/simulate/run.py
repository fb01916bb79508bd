"""Push a simulated history through ingest, wait for the pipeline, and summarise it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from tqdm import tqdm

from bokvar.processes import CONSUMES, group_lag
from bokvar.simulate.generator import Household, SimEvent
from shared.clock import STOCKHOLM
from shared.events import (
    CaseOpened,
    EnvelopeError,
    NotificationStatusChanged,
    ReferralRecorded,
    SignalRaised,
    SignalRetracted,
    TaskChanged,
    decode,
)
from shared.topics import CASE_EVENTS, NOTIFICATION_EVENTS, RISK_SIGNALS

CHUNK = 5000


@dataclass
class Pushed:
    """What ingest answered."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def by_household(events: list[SimEvent], max_items: int = 2000) -> list[list[dict[str, Any]]]:
    """Bundle each household's whole history into one request, as an ERP backfill sends it."""
    per_lease: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.item["type"] != "watermark":
            per_lease[e.item["lease_id"]].append(e.item)
    batches: list[list[dict[str, Any]]] = [[]]
    for items in per_lease.values():
        if len(batches[-1]) + len(items) > max_items:
            batches.append([])
        batches[-1].extend(items)
    return [b for b in batches if b]


async def push_backfill(
    ingest_url: str, api_key: str, events: list[SimEvent], *, through: date
) -> Pushed:
    """Send the history household by household, then the watermark: all paid through `through`.

    Until that watermark arrives the rules hold late-rent stages (the settlement lag,
    counted from the day the history arrived), so a household whose payments come in a
    later request than its charges is never flagged.
    """
    result = Pushed()
    async with httpx.AsyncClient(
        base_url=ingest_url, timeout=60, headers={"X-API-Key": api_key}
    ) as client:
        for batch in tqdm(by_household(events), desc="households' histories", unit="batch"):
            _count(result, await _post_with_retry(client, batch))
        mark = {
            "type": "watermark",
            "event_id": f"wm-backfill-{through}",
            "booked_through": str(through),
        }
        _count(result, await _post_with_retry(client, [mark]))
    return result


async def push_live(
    ingest_url: str, api_key: str, events: list[SimEvent], clock: SimClock, until: datetime
) -> Pushed:
    """Send each event when the services' simulated clock reaches it, then run on to `until`."""
    result = Pushed()
    total_days = max(1, (until - clock.now()).days)
    async with httpx.AsyncClient(
        base_url=ingest_url, timeout=60, headers={"X-API-Key": api_key}
    ) as client:
        with tqdm(total=total_days, desc="simulated days", unit="day") as bar:
            start, i = clock.now(), 0
            while clock.now() < until:
                due = []
                while i < len(events) and events[i].at <= clock.now():
                    due.append(events[i].item)
                    i += 1
                # the day's events first, then the watermark that says they are complete
                marks = [d for d in due if d["type"] == "watermark"]
                due = [d for d in due if d["type"] != "watermark"]
                for k in range(0, len(due), CHUNK):
                    _count(result, await _post_with_retry(client, due[k : k + CHUNK]))
                for mark in marks:
                    _count(result, await _post_with_retry(client, [mark]))
                bar.n = min(total_days, (clock.now() - start).days)
                bar.refresh()
                next_at = events[i].at if i < len(events) else until
                await clock.sleep_until(min(next_at, until))
    return result


def _count(result: Pushed, response: httpx.Response) -> None:
    data = response.json()
    result.accepted += data["accepted"]
    result.duplicates += data["duplicates"]
    result.rejected += data["rejected"]
    for item in data["results"]:
        for err in item.get("errors") or ():
            result.reasons[f"{err['field']}: {err['reason']}"] += 1


@dataclass(frozen=True)
class SimClock:
    """The services' clock as their /healthz reports it: `now` at real `epoch`, `speed`x."""

    at: datetime
    epoch: float
    speed: float

    def now(self) -> datetime:
        """Return what the services' clock shows now."""
        return self.at + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    async def sleep_until(self, instant: datetime) -> None:
        """Wait (in real time) until the services' clock reaches `instant`."""
        seconds = (instant - self.now()).total_seconds() / self.speed
        if seconds > 0:
            await asyncio.sleep(min(seconds, 1.0))


async def service_clock(ingest_url: str) -> SimClock:
    """Read the services' clock from ingest's /healthz."""
    async with httpx.AsyncClient(base_url=ingest_url, timeout=10) as client:
        t0 = time.time()
        body = (await client.get("/healthz")).json()
        t1 = time.time()
    now = datetime.fromisoformat(body["now"]) if body.get("now") else datetime.now(UTC)
    return SimClock(now, (t0 + t1) / 2, float(body.get("clock_speed") or 1.0))


async def _post_with_retry(client: httpx.AsyncClient, body: list[dict[str, Any]]) -> httpx.Response:
    """POST a batch (or a lone watermark, which has its own route) until ingest takes it."""
    for _ in range(30):
        if len(body) == 1 and body[0]["type"] == "watermark":
            mark = {k: v for k, v in body[0].items() if k != "type"}
            response = await client.post("/v1/ledger/watermark", json=mark)
            if response.status_code == 202:
                return _as_batch(response, mark["event_id"])
        else:
            response = await client.post("/v1/events/batch", json=body)
        if response.status_code == 202:
            return response
        if response.status_code == 503:
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:500]}")
    raise RuntimeError("ingest unavailable after 30 tries")


def _as_batch(response: httpx.Response, event_id: str) -> httpx.Response:
    """Answer a single-event post in the shape of a batch result (for `_count`)."""
    status = response.json()["status"]
    body = {
        "accepted": int(status == "accepted"),
        "duplicates": int(status == "duplicate"),
        "rejected": 0,
        "results": [{"index": 0, "event_id": event_id, "status": status, "errors": []}],
    }
    return httpx.Response(202, json=body)


@dataclass
class Observed:
    """What the pipeline emitted for the simulated organisation."""

    signals: dict[str, SignalRaised] = field(default_factory=dict)
    retracted: dict[str, SignalRetracted] = field(default_factory=dict)
    sms: dict[str, list[NotificationStatusChanged]] = field(
        default_factory=lambda: defaultdict(list)
    )
    tasks: dict[str, list[TaskChanged]] = field(default_factory=lambda: defaultdict(list))
    cases: dict[str, CaseOpened] = field(default_factory=dict)
    referrals: list[ReferralRecorded] = field(default_factory=list)
    records: int = 0


async def observe(
    servers: str, org: str, *, settle: float, timeout: float, live: bool = False
) -> Observed:
    """Read the output topics until the groups drained and, unless `live`, output went quiet.

    On a live simulated clock time runs on after the simulated period and so does a trickle
    of output: there, having drained and read everything is the end.
    """
    seen = Observed()
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in (RISK_SIGNALS, NOTIFICATION_EVENTS, CASE_EVENTS)
            for p in (consumer.partitions_for_topic(t) or {0})
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        with tqdm(desc="pipeline output", unit="event") as bar:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                n = sum(len(m) for m in batch.values())
                for msgs in batch.values():
                    for record in msgs:
                        _collect(seen, record.value, record.headers, org)
                bar.update(n)
                if n:
                    quiet_since = time.monotonic()
                elif (live or time.monotonic() - quiet_since > settle) and await _drained(servers):
                    break
    finally:
        await consumer.stop()
    return seen


async def _drained(servers: str) -> bool:
    for group, topics in CONSUMES.items():
        if await group_lag(servers, group, topics):
            return False
    return True


def _collect(seen: Observed, value: bytes | None, headers: Any, org: str) -> None:
    try:
        event = decode(value, headers)
    except EnvelopeError:
        return
    data = event.data
    if data.org_id != org:
        return
    seen.records += 1
    if isinstance(data, SignalRaised):
        seen.signals[data.signal_id] = data
    elif isinstance(data, SignalRetracted):
        seen.retracted[data.signal_id] = data
    elif isinstance(data, NotificationStatusChanged):
        seen.sms[data.notification_id].append(data)
    elif isinstance(data, TaskChanged):
        seen.tasks[data.task_id].append(data)
    elif isinstance(data, CaseOpened):
        seen.cases[data.case_id] = data
    elif isinstance(data, ReferralRecorded):
        seen.referrals.append(data)


def summary(homes: list[Household], pushed: Pushed, seen: Observed, periods: list[str]) -> str:
    """Render the end-of-run summary."""
    behaviours = Counter(h.behaviour for h in homes)
    lines = [
        f"Simulated {len(homes)} leases over periods {', '.join(periods)}",
        f"  households: {behaviours['on_time']} on time, {behaviours['late']} pay late, "
        f"{behaviours['partial']} pay part, {behaviours['stops_paying']} stop paying, "
        f"{sum(h.disturbs for h in homes)} with disturbance complaints",
        f"  ingest: {pushed.accepted} accepted, {pushed.duplicates} duplicates, "
        f"{pushed.rejected} rejected",
    ]
    lines += [f"    rejected: {reason} (x{n})" for reason, n in pushed.reasons.most_common(5)]
    by_stage = Counter(s.signal for s in seen.signals.values() if s.signal_id not in seen.retracted)
    lines.append(
        "  signals by stage: "
        + (", ".join(f"{k} {v}" for k, v in sorted(by_stage.items())) or "none")
        + f"; retracted (a payment booked in time arrived later): {len(seen.retracted)}"
    )
    lines += sms_lines(seen)
    kinds = Counter(v[0].kind for v in seen.tasks.values())
    kinds_text = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
    lines.append(f"  staff tasks: {len(seen.tasks)} ({kinds_text})")
    lines.append(
        f"  cases opened: {len(seen.cases)}; referrals: "
        f"{dict(Counter(r.recipient for r in seen.referrals)) or 'none'}"
    )
    lines.append(late_payers_line(homes, seen))
    return "\n".join(lines)


SmsHistory = dict[str, list[NotificationStatusChanged]]
DEFERRED_NOTE = (
    "not failed but held until the quiet hours end (policy default: tenant SMS only 08-20 "
    "Stockholm time, not on Sundays or holidays; staff alerts in working hours) or the weekly "
    "cap per tenant allows: the notifier sends them then"
)


def _last(history: list[NotificationStatusChanged]) -> NotificationStatusChanged:
    return max(history, key=lambda e: e.at)


def _statuses(group: SmsHistory) -> str:
    last = Counter(_last(v).status for v in group.values())
    return ", ".join(f"{k} {n}" for k, n in sorted(last.items())) or "none"


def _purpose(template: str | None) -> str:
    if template == "welcome":
        return "welcome"
    return "staff" if (template or "").startswith("staff_") else "rent"


def sms_lines(seen: Observed) -> list[str]:
    """Say what SMS went out: welcome apart from rent, through which channel, why some wait."""
    groups: dict[str, SmsHistory] = {"welcome": {}, "rent": {}, "staff": {}}
    for nid, history in seen.sms.items():
        groups[_purpose(history[0].template)][nid] = history
    signals = Counter(v[0].signal or "-" for v in groups["rent"].values())
    channels = Counter(e.channel for v in seen.sms.values() for e in v if e.status == "sent")
    via = ", ".join(f"{k} ({n})" for k, n in sorted(channels.items())) or "none yet"
    if "log" in channels:
        via += (
            " (channel log: written to the notifier's log, not sent; set BOKVAR_NOTIFIER_TWILIO_*)"
        )
    welcome, rent, staff = groups["welcome"], groups["rent"], groups["staff"]
    lines = [
        f"  SMS: {len(seen.sms)}, sent through channel {via}",
        f"    welcome SMS to new tenants: {len(welcome)} ({_statuses(welcome)})",
        f"    about rent and arrears: {len(rent)} ({_statuses(rent)}); by signal: "
        + (", ".join(f"{k} {n}" for k, n in sorted(signals.items())) or "none"),
        f"    alerts to staff: {len(staff)} ({_statuses(staff)})",
    ]
    deferred = sum(1 for v in seen.sms.values() if _last(v).status == "deferred")
    if deferred:
        lines.append(f"    {deferred} deferred: {DEFERRED_NOTE}")
    return lines


def late_payers_line(homes: list[Household], seen: Observed) -> str:
    """Say how many households that paid late, in part or not at all got each kind of help."""
    late = {h.lease_id for h in homes if h.behaviour != "on_time"}
    sms = {
        v[0].lease_id
        for v in seen.sms.values()
        if v[0].signal in ("late_rent_detected", "plan_breached")
        and any(e.status in ("sent", "delivered") for e in v)
    }
    calls = {v[0].lease_id for v in seen.tasks.values() if v[0].kind == "phone_call"}
    cases = {c.lease_id for c in seen.cases.values()}
    flagged = {
        s.lease_id
        for s in seen.signals.values()
        if s.signal == "late_rent_detected" and s.signal_id not in seen.retracted
    }
    return (
        f"  late payers ({len(late)}): {len(late & flagged)} flagged late, "
        f"{len(late & sms)} got a late-rent SMS, {len(late & calls)} a phone-call task, "
        f"{len(late & cases)} a case; on-time payers flagged: {len(flagged - late)}"
    )


REPORT_FIELDS = (
    "households_flagged_late",
    "median_days_due_to_first_sms",
    "median_days_due_to_first_reached_call",
    "cases_active",
    "share_with_payment_plan",
    "evictions",
    "evictions_per_1000_homes",
)


async def report_line(cases_url: str, org: str, token: str, start: date, end: date) -> str:
    """Fetch the cases service's report for the simulated period."""
    try:
        async with httpx.AsyncClient(base_url=cases_url, timeout=30) as client:
            response = await client.get(
                f"/v1/orgs/{org}/report",
                params={"start": start.isoformat(), "end": end.isoformat()},
                headers={"Authorization": f"Bearer {token}", "X-Audit-Reason": "simulation"},
            )
    except httpx.HTTPError as exc:
        return f"  report: cases service unreachable ({type(exc).__name__})"
    if response.status_code != 200:
        return f"  report: cases answered {response.status_code}: {response.text[:200]}"
    body = response.json()
    shown = ", ".join(f"{k} {body.get(k)}" for k in REPORT_FIELDS)
    return f"  report {start}..{end}: {shown}"


def period_labels(events: list[SimEvent]) -> list[str]:
    """Return the rent periods the simulated charges cover."""
    return sorted({e.item["period"] for e in events if e.item["type"] == "charge"})


def today_local() -> date:
    """Return today's date in Swedish time."""
    return datetime.now(STOCKHOLM).date()
