"""Run the four services as real processes, the way `bokvar up` does, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bokvar.commands.migrate import migrate_all
from bokvar.processes import PORT_SETTINGS, ServiceProcess, wait_drained
from shared.bus.broker import free_port

SERVICES = ("ingest", "rules", "notifier", "cases")


async def fresh_database_url(base_url: str, tmp: Path) -> tuple[str, str | None]:
    """Return (url, pg database name to drop) for an empty database of its own."""
    if base_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp}/e2e.db", None
    name = f"bokvar_e2e_{uuid.uuid4().hex[:8]}"
    parsed = make_url(base_url)
    conn = await asyncpg.connect(
        parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False), name


async def drop_database(base_url: str, name: str) -> None:
    """Drop a database made by fresh_database_url."""
    parsed = make_url(base_url)
    conn = await asyncpg.connect(
        parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Pipeline:
    """Four service processes sharing one broker, one database URL and one simulated clock."""

    bootstrap_servers: str
    database_url: str
    var_dir: Path
    clock_start: datetime
    clock_speed: float
    extra_env: Mapping[str, str] = field(default_factory=dict)
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    epoch: float = field(default_factory=time.time)

    def env(self) -> dict[str, str]:
        """Return the environment every service process gets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
        env.update(
            {
                "BOKVAR_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "BOKVAR_DATABASE_URL": self.database_url,
                "BOKVAR_VAR_DIR": str(self.var_dir),
                "BOKVAR_LOG_FORMAT": "json",
                # the published development secrets, on PostgreSQL too
                "BOKVAR_DEV_MODE": "true",
                # staff tokens live long on the fast simulated clock
                "BOKVAR_CASES_JWT_MAX_LIFETIME_HOURS": str(24 * 3650),
                "BOKVAR_CLOCK_START": self.clock_start.isoformat(),
                "BOKVAR_CLOCK_EPOCH": repr(self.epoch),
                "BOKVAR_CLOCK_SPEED": repr(self.clock_speed),
                "BOKVAR_KAFKA_SESSION_TIMEOUT_MS": "2000",
                "BOKVAR_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "BOKVAR_KAFKA_REBALANCE_TIMEOUT_MS": "1000",
                "BOKVAR_CONSUMER_POLL_MS": "50",
            }
        )
        for service, (name, _default) in PORT_SETTINGS.items():
            env[name] = str(self.procs[service].port if service in self.procs else free_port())
        env["BOKVAR_NOTIFIER_INGEST_URL"] = f"http://127.0.0.1:{env['BOKVAR_INGEST_PORT']}"
        env["BOKVAR_NOTIFIER_PUBLIC_URL"] = f"http://127.0.0.1:{env['BOKVAR_NOTIFIER_PORT']}"
        env.update(self.extra_env)
        return env

    def url(self, service: str) -> str:
        """Return a service's base URL."""
        return self.procs[service].url

    async def start(self) -> None:
        """Migrate, start every service and wait until each is healthy."""
        await migrate_all(self.database_url, list(SERVICES))
        self.epoch = time.time()  # the simulated clock starts with the processes
        env = self.env()
        for service in SERVICES:
            proc = ServiceProcess(service, env, log_dir=self.var_dir / "logs")
            proc.start()
            self.procs[service] = proc
        await asyncio.gather(*(p.wait_healthy(path="/readyz") for p in self.procs.values()))

    def kill9(self, service: str) -> None:
        """Kill a service with SIGKILL, as a crash would."""
        self.procs[service].kill9()

    async def restart(self, service: str) -> None:
        """Start a stopped or killed service again with the same settings and port."""
        proc = self.procs[service]
        proc.start()
        await proc.wait_healthy(path="/readyz")

    async def drained(self, groups: tuple[str, ...] = ("rules", "notifier", "cases")) -> bool:
        """Wait until the services' consumer groups have consumed everything."""
        return await wait_drained(self.bootstrap_servers, groups, timeout=60)

    def stop(self) -> None:
        """Stop every service gracefully."""
        for proc in self.procs.values():
            proc.terminate(timeout=20)

    def log(self, service: str) -> str:
        """Return a service's log (for failure messages)."""
        path = self.var_dir / "logs" / f"{service}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
