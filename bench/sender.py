"""Notifier's sender on PostgreSQL: SMS/s through the real Twilio SDK at a given latency.

    python bench/sender.py [--sms 100] [--latency 0.25] [--concurrency 1 4 8] [--rate 1000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Creates a scratch database (dropped afterwards), starts the test suite's local Twilio
Messages API (tests/notifier/twilio_server.py: every create takes `--latency` seconds, as
Twilio's API does) and its ingest contacts stand-in, and measures, per concurrency:
1. raw: `--sms` creates through the channel alone (the real SDK in its worker threads),
   that many at once: what Twilio's latency allows;
2. sender: `--sms` queued tenant SMS (one per lease and tenant, 09:00 on a Tuesday) sent
   by `Sender.run_once` passes with that `concurrency`: the contact lookup, the claim
   transaction (opt-out, quiet hours, the weekly cap under the tenant's lock), the SDK
   call and the record of the SID, per SMS -> SMS/s and the ratio to raw.
The policy's `sender_rate_per_second` is set to `--rate` (default 1,000: the sender's own
capacity, not the policy's pace); with `--rate 5` (the default policy) it shows the pace.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/sender.py` puts bench/ first on sys.path, where this file shadows the package
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta

import httpx

from notifier.channels import TwilioChannel
from notifier.config import NotifierSettings
from notifier.contacts import IngestContacts
from notifier.policy import load_policy
from notifier.sender import Sender
from notifier.store import NotifierStore
from notifier.workflow import Context, on_signal
from shared.clock import STOCKHOLM, ManualClock
from shared.db import Database
from shared.db.migrate import migrate
from shared.logging import configure_logging
from tests.e2e.pipeline import drop_database, fresh_database_url
from tests.notifier.conftest import local, make_signal
from tests.notifier.ingest_stub import running_ingest
from tests.notifier.twilio_server import running_twilio


async def raw_rate(channel: TwilioChannel, n: int, width: int) -> float:
    """`n` creates through the channel, `width` at once; return creates/s."""
    gate = asyncio.Semaphore(width)

    async def one(k: int) -> None:
        async with gate:
            await channel.send(to=f"+4670777{k:04d}", body="raw", status_callback=None)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(n)))
    return n / (time.perf_counter() - t0)


async def queue_sms(db: Database, ctx: Context, clock: ManualClock, arm: str, n: int) -> None:
    """Queue one late-rent SMS for each of `n` leases of this arm (tenant known)."""
    async with db.sessionmaker.begin() as session:
        store = NotifierStore(session, clock=clock)
        for k in range(n):
            lease = f"{arm}-{k}"
            await store.upsert_lease(
                lease_id=lease, org_id="org1", team="t", tenant_ids=[f"T{lease}"], now=clock.now()
            )
            await on_signal(store, ctx, make_signal(lease), clock.now())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sms", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per Twilio create")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rate", type=float, default=1000.0, help="sender_rate_per_second")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    configure_logging("warning")
    policy = load_policy().model_copy(update={"sender_rate_per_second": args.rate})
    ctx = Context(policy=policy, tz=STOCKHOLM)
    clock = ManualClock(local(2026, 3, 3, 9, 0))
    with tempfile.TemporaryDirectory() as tmp:
        url, scratch = await fresh_database_url(args.database_url, Path(tmp))
        db = Database(url, "notifier")
        try:
            await migrate(db)
            with running_twilio() as twilio, running_ingest() as ingest:
                twilio.delay = args.latency
                print(
                    f"{args.sms} SMS per arm, Twilio latency {args.latency * 1000:.0f} ms, "
                    f"sender_rate_per_second {args.rate:g}, database {db.url.get_backend_name()}"
                )
                async with httpx.AsyncClient(base_url=ingest.base_url) as client:
                    for width in args.concurrency:
                        channel = twilio.channel(workers=width)
                        raw = await raw_rate(channel, args.sms, width)
                        arm = f"c{width}"
                        for k in range(args.sms):
                            ingest.add_lease(
                                f"{arm}-{k}",
                                tenants=[{"tenant_id": f"T{arm}-{k}", "phone": f"+4670888{k:04d}"}],
                            )
                        await queue_sms(db, ctx, clock, arm, args.sms)
                        sender = Sender(
                            database=db,
                            ctx=ctx,
                            channel=channel,
                            contacts=IngestContacts(client, ingest.token),
                            clock=clock,
                            phone_key=b"bench",
                            callback_url=None,
                            batch=NotifierSettings.model_fields["notifier_sender_batch"].default,
                            concurrency=width,
                            reconcile_after=timedelta(minutes=2),
                        )
                        twilio.max_in_flight = 0
                        t0 = time.perf_counter()
                        sent = 0
                        while sent < args.sms:
                            done = await sender.run_once()
                            if not done:
                                raise RuntimeError(f"sender stalled at {sent} of {args.sms}")
                            sent += done
                        rate = sent / (time.perf_counter() - t0)
                        print(
                            f"concurrency {width}: raw SDK creates {raw:,.1f}/s; sender {rate:,.1f}"
                            f" SMS/s (ratio {rate / raw:.2f}); at most {twilio.max_in_flight}"
                            " at Twilio at once"
                        )
        finally:
            await db.dispose()
            if scratch:
                await drop_database(args.database_url, scratch)


if __name__ == "__main__":
    asyncio.run(main())
