"""`bokvar up`: the whole pipeline on one machine.

Starts the embedded broker (unless BOKVAR_KAFKA_BOOTSTRAP_SERVERS names a Kafka), creates
the topics, runs the migrations, then runs ingest, rules, notifier and cases as separate
processes. A service that dies is reported and restarted. Ctrl-C or SIGTERM drains and
stops everything: ingest stops taking events first, then each consumer group is waited on
until it has consumed everything before its service stops, and the broker stops last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from datetime import UTC, datetime

from pydantic import SecretStr

from bokvar.commands.migrate import migrate_all
from bokvar.processes import PORT_SETTINGS, ServiceProcess, wait_drained
from shared.bus import create_topics
from shared.bus.broker import ADDRESS_FILE, EMBEDDED_NOTE, EmbeddedBroker, wait_for_broker
from shared.config import EMBEDDED, CommonSettings
from shared.serve import refuse_insecure

SERVICES = ("ingest", "rules", "notifier", "cases", "console")
DATABASE_SERVICES = ("ingest", "rules", "notifier", "cases")  # the console owns no tables
STOP_ORDER = (
    ("console", ()),
    ("ingest", ()),
    ("rules", ("rules",)),
    ("notifier", ("notifier",)),
    ("cases", ("cases",)),
)
MAX_RESTARTS_PER_MINUTE = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clock-speed",
        type=float,
        default=None,
        help="run every service on one simulated clock this many times faster than real "
        "time (e.g. 86400: a day per second), for `bokvar simulate`",
    )
    parser.add_argument(
        "--clock-start",
        default=None,
        help="ISO instant the simulated clock starts at (default: now)",
    )
    parser.add_argument(
        "--broker-port",
        type=int,
        default=None,
        help="port of the embedded broker (default: a free one)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=SERVICES,
        default=list(SERVICES),
        help="run only these services",
    )


class Supervisor:
    """Owns the broker and the service processes of `bokvar up`."""

    def __init__(self, settings: CommonSettings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.broker: EmbeddedBroker | None = None
        self.servers = settings.kafka_bootstrap_servers
        self.procs: dict[str, ServiceProcess] = {}
        self.stopping = asyncio.Event()
        self.restart_times: dict[str, list[float]] = {s: [] for s in SERVICES}

    async def start(self) -> None:
        var = self.settings.var_dir
        var.mkdir(parents=True, exist_ok=True)
        if self.servers == EMBEDDED:
            self.broker = EmbeddedBroker(self.args.broker_port, log_path=var / "broker.log")
            self.broker.start()
            self.servers = self.broker.bootstrap_servers
            self.broker.write_address(var)
            print(f"embedded broker on {self.servers} ({EMBEDDED_NOTE})", flush=True)
        await wait_for_broker(self.servers)
        created = await create_topics(
            self.servers,
            partitions=self.settings.topic_partitions,
            replication_factor=self.settings.topic_replication_factor,
        )
        print(f"topics ready ({len(created)} created)", flush=True)
        await migrate_all(self.settings.database_url, list(DATABASE_SERVICES))
        print("migrations applied", flush=True)
        env = {**os.environ, "BOKVAR_KAFKA_BOOTSTRAP_SERVERS": self.servers}
        # The notifier looks tenants' phones up at ingest: follow a changed ingest port.
        ingest_port = env.get("BOKVAR_INGEST_PORT", "8001")
        env.setdefault("BOKVAR_NOTIFIER_INGEST_URL", f"http://127.0.0.1:{ingest_port}")
        # The console calls the other four: follow changed ports too.
        for service, (port_name, port) in PORT_SETTINGS.items():
            if service != "console":
                url = f"http://127.0.0.1:{env.get(port_name, port)}"
                env.setdefault(f"BOKVAR_CONSOLE_{service.upper()}_URL", url)
        if self.args.clock_speed:
            start = self.args.clock_start or datetime.now(UTC).isoformat()
            # Loops run on real-time intervals: keep them short against simulated days.
            env.setdefault("BOKVAR_RULES_SWEEP_INTERVAL_SECONDS", "0.1")
            env.setdefault("BOKVAR_NOTIFIER_SENDER_INTERVAL_SECONDS", "0.1")
            env.setdefault("BOKVAR_NOTIFIER_ESCALATION_INTERVAL_SECONDS", "0.2")
            env.update(
                {
                    "BOKVAR_CLOCK_START": start,
                    "BOKVAR_CLOCK_EPOCH": repr(time.time()),
                    "BOKVAR_CLOCK_SPEED": repr(self.args.clock_speed),
                }
            )
            print(
                f"simulated clock: from {start}, {self.args.clock_speed:g}x real time", flush=True
            )
        for service in self.args.only:
            proc = ServiceProcess(service, env, log_dir=var / "logs")
            proc.start()
            self.procs[service] = proc
        for proc in self.procs.values():
            await proc.wait_healthy()
            page = "/ (sign in)" if proc.service == "console" else "/docs"
            print(f"  {proc.service:<9} {proc.url}{page}", flush=True)
        print(credentials_note(self.settings), flush=True)
        print(f"Bokvar is up. Logs in {var / 'logs'}. Ctrl-C stops everything.", flush=True)

    async def watch(self) -> None:
        """Restart a service that died (at most MAX_RESTARTS_PER_MINUTE times a minute)."""
        while not self.stopping.is_set():
            for service, proc in self.procs.items():
                code = proc.exit_code()
                if code is None or self.stopping.is_set():
                    continue
                now = time.monotonic()
                recent = [t for t in self.restart_times[service] if now - t < 60]
                self.restart_times[service] = recent
                if len(recent) >= MAX_RESTARTS_PER_MINUTE:
                    print(
                        f"!! {service} died {len(recent)} times in a minute (exit {code}); "
                        f"giving up on it, see var/logs/{service}.log",
                        flush=True,
                    )
                    self.stopping.set()
                    return
                print(f"!! {service} exited with code {code}; restarting", flush=True)
                recent.append(now)
                proc.restarts += 1
                proc.start()
            if self.broker is not None and not self.broker.alive():
                print("!! the embedded broker died; stopping", flush=True)
                self.stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=0.5)

    async def stop(self) -> None:
        """Drain and stop in dependency order, then the broker."""
        print("stopping: draining consumers ...", flush=True)
        for service, groups in STOP_ORDER:
            proc = self.procs.get(service)
            if proc is None:
                continue
            if groups and not await wait_drained(self.servers, list(groups), timeout=30):
                print(f"   {service}: not fully drained after 30 s", flush=True)
            code = await asyncio.to_thread(proc.terminate)
            how = "after SIGTERM" if code == -signal.SIGTERM else f"exit {code}"
            print(f"   {service} stopped ({how})", flush=True)
        if self.broker is not None:
            try:
                self.broker.stop()
            finally:
                (self.settings.var_dir / ADDRESS_FILE).unlink(missing_ok=True)
        print("stopped.", flush=True)


def credentials_note(settings: CommonSettings) -> str:
    """Say how to call the APIs: the dev service token (only if it is the dev default)."""
    token = settings.service_token.get_secret_value()
    default = CommonSettings.model_fields["service_token"].get_default(call_default_factory=True)
    is_dev = isinstance(default, SecretStr) and default.get_secret_value() == token
    shown = token if is_dev else "(from BOKVAR_SERVICE_TOKEN, not shown)"
    return (
        "Calling the APIs (README, 'Calling the APIs'):\n"
        f"  service token (rules, notifier): Authorization: Bearer {shown}\n"
        "  cases JWT:      bokvar token --role admin   (or --role landlord_staff --org ORG)\n"
        "  ingest API key: bokvar clients create --org ORG --name NAME"
    )


async def _run(sup: Supervisor) -> int:
    """Start, then watch until a signal; a signal while starting stops at once."""
    starting = asyncio.create_task(sup.start())
    stop_asked = asyncio.create_task(sup.stopping.wait())
    await asyncio.wait({starting, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
    stop_asked.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return 0
    try:
        starting.result()
    except (RuntimeError, TimeoutError) as exc:
        print(f"!! {exc}; see {sup.settings.var_dir / 'logs'}", flush=True)
        return 1
    await sup.watch()
    return 0


async def _main(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    sup = Supervisor(settings, args)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stopping.set)
    try:
        return await _run(sup)
    finally:
        await sup.stop()


def _refuse_insecure(services: list[str]) -> None:
    """Exit before anything starts if a service would refuse its secrets."""
    from ingest.config import IngestSettings
    from notifier.config import NotifierSettings
    from rules.config import RulesSettings
    from services.cases.config import CasesSettings
    from services.console.config import ConsoleSettings

    classes: dict[str, type[CommonSettings]] = {
        "ingest": IngestSettings,
        "rules": RulesSettings,
        "notifier": NotifierSettings,
        "cases": CasesSettings,
        "console": ConsoleSettings,
    }
    for service in services:
        refuse_insecure(classes[service]())


def run(args: argparse.Namespace) -> int:
    _refuse_insecure(args.only)
    return asyncio.run(_main(args))
