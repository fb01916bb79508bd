"""`bokvar simulate`: a synthetic ERP pushing through ingest, and a summary of the outcome.

Two modes, chosen from the clock the services report on ingest's /healthz:
- live (services started with `bokvar up --clock-speed N`): the next `--months` rent
  periods are played on the services' accelerated clock, each event sent when that clock
  reaches it, so the rules see rent become late and payments arrive in real order, and
  each night at 23:30 a ledger watermark says the day's payments are all sent;
- backfill (services on the real clock): the `--months` periods up to today are sent
  household by household, as an ERP sends its history when it is connected, then a
  watermark "payments booked through today"; households still owing then get the
  arrears ladder at once, households that paid on time get nothing.
Then it reads risk.signals, notification.events and case.events until the consumer
groups have drained and nothing new arrives, and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, time, timedelta

import httpx
from pydantic import ValidationError

from bokvar.commands.token import mint
from bokvar.simulate.generator import (
    Shares,
    history,
    households,
    periods_ahead,
    plan,
    watermarks,
)
from bokvar.simulate.run import (
    observe,
    period_labels,
    push_backfill,
    push_live,
    report_line,
    service_clock,
    summary,
)
from ingest.config import IngestSettings
from services.cases.config import CasesSettings
from shared.bus.broker import resolve_bootstrap_servers
from shared.calendar import rent_due_date
from shared.clock import STOCKHOLM
from shared.config import CommonSettings


def _local_url(settings_class: type[CommonSettings], port_field: str) -> str:
    """Return http://<host>:<port> of a service from its settings (BOKVAR_*_PORT)."""
    try:
        settings = settings_class()
        port, host = getattr(settings, port_field), settings.host
    except ValidationError:  # the service would not start either; show the plain default
        port, host = settings_class.model_fields[port_field].default, "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{port}"


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Show `(default: ...)` in --help, except where the help text says what None means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _Defaults
    parser.add_argument("--leases", type=int, default=1000, help="households to simulate")
    parser.add_argument("--months", type=int, default=2, help="rent periods to simulate")
    parser.add_argument(
        "--org",
        default=None,
        help="organisation of the simulated ERP; without it each run gets a fresh one "
        "(sim-YYYYMMDD-HHMMSS), so a second run does not mix with the first",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the households")
    parser.add_argument(
        "--ingest-url",
        default=_local_url(IngestSettings, "ingest_port"),
        help="ingest's base URL (follows BOKVAR_INGEST_PORT)",
    )
    parser.add_argument(
        "--cases-url",
        default=_local_url(CasesSettings, "cases_port"),
        help="where to fetch the report figures, with an admin token signed with "
        "BOKVAR_CASES_JWT_SECRET (follows BOKVAR_CASES_PORT)",
    )
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
    parser.add_argument("--late", type=float, default=Shares.late, help="share paying late")
    parser.add_argument(
        "--partial", type=float, default=Shares.partial, help="share paying only part"
    )
    parser.add_argument(
        "--stops-paying", type=float, default=Shares.stops_paying, help="share that stops paying"
    )
    parser.add_argument(
        "--disturbance",
        type=float,
        default=Shares.disturbance,
        help="share with disturbance complaints",
    )
    parser.add_argument(
        "--settle", type=float, default=8.0, help="seconds without new output before the summary"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="most seconds to wait for the pipeline"
    )
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="send past history even when the services run a simulated clock",
    )


def fresh_org(now: datetime) -> str:
    """Return the organisation id of a run without --org: one per run, readable."""
    return "sim-" + now.strftime("%Y%m%d-%H%M%S")


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
    clock = await service_clock(args.ingest_url)
    args.org = args.org or fresh_org(datetime.now(STOCKHOLM))
    print(f"organisation {args.org}", flush=True)
    live = clock.speed > 1.0 and not args.backfill
    start = clock.now().astimezone(STOCKHOLM).date()
    homes = households(args.leases, seed=args.seed, shares=shares, org=args.org, start=start)
    if live:
        ps = periods_ahead(args.months, start)
        events = plan(homes, ps, seed=args.seed)  # leases dated earlier go out first
        until = datetime.combine(
            rent_due_date(*ps[-1]) + timedelta(days=12), time(12), tzinfo=STOCKHOLM
        )
        events = sorted(events + watermarks(args.org, start, until.date()))
    else:
        events = history(homes, months=args.months, today=start, seed=args.seed)
    api_key = args.api_key or await _api_key(settings, args.org)
    servers = args.bootstrap_servers or resolve_bootstrap_servers(
        settings.kafka_bootstrap_servers, settings.var_dir
    )
    mode = (
        f"live on the services' clock ({clock.speed:g}x)"
        if live
        else "backfill: the services run on the real clock"
    )
    print(f"{len(events)} events for {len(homes)} leases -> {args.ingest_url}; {mode}", flush=True)
    if live:
        pushed = await push_live(args.ingest_url, api_key, events, clock, until)
    else:
        pushed = await push_backfill(args.ingest_url, api_key, events, through=start)
    seen = await observe(servers, args.org, settle=args.settle, timeout=args.timeout, live=live)
    print(summary(homes, pushed, seen, period_labels(events)), flush=True)
    first = min(e.at for e in events).astimezone(STOCKHOLM).date()
    end = clock.now().astimezone(STOCKHOLM).date()
    token = mint(
        CasesSettings(),
        role="admin",
        sub="bokvar-simulate",
        now=clock.now() - timedelta(hours=1),
        ttl=timedelta(hours=12),
    )
    print(await report_line(args.cases_url, args.org, token, first, end), flush=True)
    return 0 if pushed.rejected == 0 else 1


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except httpx.RequestError as exc:
        raise SystemExit(
            f"bokvar simulate: no answer from {exc.request.url} ({type(exc).__name__}). Is the "
            "pipeline running? Start it with `python3 dev.py up`, or pass --ingest-url."
        ) from None
    except RuntimeError as exc:  # no embedded broker, or ingest refused a batch
        raise SystemExit(f"bokvar simulate: {exc}") from None
