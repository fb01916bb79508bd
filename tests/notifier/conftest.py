"""Fixtures of the notifier tests: fake Twilio, ingest stand-in, database, sender factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest

from notifier.contacts import IngestContacts
from notifier.policy import load_policy
from notifier.sender import Sender
from notifier.store import NotifierStore
from notifier.workflow import Context
from shared.clock import ManualClock
from shared.db import Database
from shared.events import LeaseRegistered, LeaseUpdated, RiskScore, SignalRaised, TenantRef
from tests.notifier.ingest_stub import IngestStub, running_ingest
from tests.notifier.twilio_server import FakeTwilio, running_twilio

STHLM = ZoneInfo("Europe/Stockholm")
PHONE_KEY = b"test-phone-key"
CALLBACK = "https://notifier.example.se/webhooks/twilio/status"
T = TypeVar("T")


def local(*args: int) -> datetime:
    """An aware Stockholm-time instant."""
    return datetime(*args, tzinfo=STHLM)  # type: ignore[misc]


def make_lease(
    start: date = date(2020, 1, 1),
    *,
    tenant_ids: tuple[str, ...] = ("T1",),
    kind: type[LeaseRegistered] | type[LeaseUpdated] = LeaseRegistered,
) -> LeaseRegistered | LeaseUpdated:
    """Return a lease event for L-1 of org1 (team-a) with the given tenants."""
    return kind(
        lease_id="L-1",
        org_id="org1",
        property_id="P1",
        municipality_code="0180",
        monthly_rent_ore=850_000,
        start_date=start,
        team="team-a",
        tenants=tuple(
            TenantRef(
                tenant_id=t,
                pseudonym=(t * 32)[:32],
                birth_year=1990,
                age_band="30-39",
                gender="male",
            )
            for t in tenant_ids
        ),
    )


def make_signal(
    lease_id: str = "L-1",
    signal: str = "late_rent_detected",
    *,
    signal_id: str | None = None,
    org_id: str = "org1",
    arrears_ore: int = 812_300,
) -> SignalRaised:
    """A signal as the rules service emits it."""
    return SignalRaised(
        lease_id=lease_id,
        org_id=org_id,
        signal_id=signal_id or f"{lease_id}:2026-03:{signal}",
        signal=signal,  # type: ignore[arg-type]
        rule="test",
        policy_version="test-1",
        occurred_at=datetime(2026, 3, 3, 6, 0, tzinfo=UTC),
        period="2026-03",
        due_date=date(2026, 2, 27),
        days_late=4,
        arrears_ore=arrears_ore,
        risk=RiskScore(score=40),
        reason_sv="Hyran är sen.",
        reason_en="Rent is late.",
    )


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The local Twilio-compatible server."""
    with running_twilio() as server:
        yield server


@pytest.fixture
def ingest() -> Iterator[IngestStub]:
    """The ingest contacts stand-in, with lease L-1 (tenant T1, +46701234567)."""
    with running_ingest() as stub:
        stub.add_lease("L-1")
        yield stub


@pytest.fixture
async def db(make_database: Callable[[str], Awaitable[Database]]) -> Database:
    """The notifier's migrated database."""
    return await make_database("notifier")


@pytest.fixture
def clock() -> ManualClock:
    """Tuesday 3 March 2026, 09:00 in Stockholm."""
    return ManualClock(local(2026, 3, 3, 9, 0))


@pytest.fixture
def ctx() -> Context:
    """The default policy."""
    return Context(policy=load_policy(), tz=STHLM)


SenderFactory = Callable[..., Sender]


@pytest.fixture
async def make_sender(
    db: Database, ctx: Context, twilio: FakeTwilio, ingest: IngestStub, clock: ManualClock
) -> AsyncIterator[SenderFactory]:
    """Build senders that talk to the fake Twilio through the real SDK."""
    async with httpx.AsyncClient(base_url=ingest.base_url) as client:

        def make(**overrides: Any) -> Sender:
            channel = twilio.channel(workers=overrides.get("concurrency", 4))
            values: dict[str, Any] = {
                "database": db,
                "ctx": ctx,
                "channel": channel,
                "contacts": IngestContacts(client, ingest.token),
                "clock": clock,
                "phone_key": PHONE_KEY,
                "callback_url": CALLBACK,
                "reconcile_after": timedelta(seconds=60),
            }
            values.update(overrides)
            return Sender(**values)

        yield make


async def in_tx(
    db: Database, clock: ManualClock, work: Callable[[NotifierStore], Awaitable[T]]
) -> T:
    """Run `work` with a store in one committed transaction."""
    async with db.sessionmaker.begin() as session:
        return await work(NotifierStore(session, clock=clock))


async def add_lease(
    db: Database, clock: ManualClock, lease_id: str = "L-1", *, team: str = "team-a"
) -> None:
    """Make a lease known to the notifier (as a lease event would)."""
    await in_tx(
        db,
        clock,
        lambda s: s.upsert_lease(
            lease_id=lease_id, org_id="org1", team=team, tenant_ids=["T1"], now=clock.now()
        ),
    )


async def add_staff(db: Database, clock: ManualClock, staff_id: str, **values: Any) -> None:
    """Add a staff member to the directory (team-a, 08-17 weekdays by default)."""
    row = {
        "name": f"Staff {staff_id}",
        "phone": "+46709990000",
        "team": "team-a",
        "is_lead": False,
        "work_start": "08:00",
        "work_end": "17:00",
        "work_days": "12345",
        "active": True,
        **values,
    }
    await in_tx(db, clock, lambda s: s.upsert_staff(staff_id, row, now=clock.now()))
