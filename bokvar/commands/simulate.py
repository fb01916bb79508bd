"""`bokvar simulate`: push a synthetic ERP history through ingest and summarise the outcome.

The simulator walks through `--months` rent periods ending today, day by day in time
order (an accelerated clock: each simulated day takes as long as ingest needs to accept
it), sending lease, charge, payment and complaint events through ingest's batch API. It
then reads risk.signals, notification.events and case.events until the consumer groups
have drained and nothing new arrives, and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio

from bokvar.simulate.generator import Shares, history, households
from bokvar.simulate.run import observe, period_labels, push, summary, today_local
from shared.bus.broker import resolve_bootstrap_servers
from shared.config import CommonSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leases", type=int, default=1000)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--org", default="sim", help="organisation of the simulated ERP")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ingest-url", default="http://127.0.0.1:8001")
    parser.add_argument(
        "--api-key",
        default=None,
        help="ERP API key (default: create one in the local ingest database)",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka to read results from (default: BOKVAR_KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument("--late", type=float, default=Shares.late)
    parser.add_argument("--partial", type=float, default=Shares.partial)
    parser.add_argument("--stops-paying", type=float, default=Shares.stops_paying)
    parser.add_argument("--disturbance", type=float, default=Shares.disturbance)
    parser.add_argument(
        "--settle", type=float, default=8.0, help="seconds without new output before the summary"
    )
    parser.add_argument("--timeout", type=float, default=300.0)


async def _api_key(settings: CommonSettings, org: str) -> str:
    from ingest.clients import create_client  # the local ingest database
    from shared.db import Database

    database = Database(settings.database_url, "ingest")
    try:
        return await create_client(database, org, "bokvar simulate")
    finally:
        await database.dispose()


async def _main(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    shares = Shares(args.late, args.partial, args.stops_paying, args.disturbance)
    today = today_local()
    homes = households(args.leases, seed=args.seed, shares=shares, org=args.org, start=today)
    events = history(homes, months=args.months, today=today, seed=args.seed)
    api_key = args.api_key or await _api_key(settings, args.org)
    servers = args.bootstrap_servers or resolve_bootstrap_servers(
        settings.kafka_bootstrap_servers, settings.var_dir
    )
    print(f"pushing {len(events)} events for {len(homes)} leases to {args.ingest_url}", flush=True)
    pushed = await push(args.ingest_url, api_key, events)
    seen = await observe(servers, args.org, settle=args.settle, timeout=args.timeout)
    print(summary(homes, pushed, seen, period_labels(events)), flush=True)
    return 0 if pushed.rejected == 0 else 1


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
