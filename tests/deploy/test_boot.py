"""The compose stack's commands and settings boot the real services (no Docker needed).

Runs what the containers run, `bokvar migrate`, `bokvar topics create` and `bokvar serve
<svc>` for the four services, as processes with the environment docker-compose.yml gives
them. Only what names the compose network is replaced: the database (SQLite, or a fresh
PostgreSQL database with BOKVAR_TEST_DATABASE_URL), the broker (the embedded test broker),
the ports (free ones) and the consumer-group timeouts (tuned for a real Kafka; the embedded
broker delays a group join by about the rebalance timeout). Then the container probe must
report every service healthy, /readyz must be 200, and SIGTERM must stop each cleanly
within the stop grace period.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.bus.broker import EmbeddedBroker
from tests.deploy.support import (
    HEALTHCHECK,
    SERVICES,
    all_secret_env_names,
    compose,
    compose_effective_env,
)
from tests.helpers import FAST_GROUP, wait_for

pytestmark = pytest.mark.slow

BOKVAR = Path(sys.executable).with_name("bokvar")
STOP_GRACE_SECONDS = 45  # docker-compose.yml stop_grace_period, k8s terminationGracePeriodSeconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own: a fresh PostgreSQL database, or SQLite files in tmp_path."""
    pg = os.environ.get("BOKVAR_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite+aiosqlite:///{tmp_path}/bokvar.db"
        return
    name = f"bokvar_boot_{uuid.uuid4().hex[:10]}"
    admin = make_url(pg).set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield make_url(pg).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


# What an operator puts in deploy/secrets.env: a random value for every secret.
OPERATOR_SECRETS = {
    name: secrets.token_urlsafe(32)
    for name in all_secret_env_names()
    if name != "BOKVAR_DATABASE_URL" and "TWILIO" not in name
}


def _environment(
    service: str, database_url: str, broker: EmbeddedBroker, ports: dict[str, int], var: Path
) -> dict[str, str]:
    """Return the compose environment of `service`, pointed at the test's broker and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
    env.update(compose_effective_env(compose()["services"][service]))
    env.update({k: v for k, v in OPERATOR_SECRETS.items() if k in env})
    env.update(
        {
            "BOKVAR_DATABASE_URL": database_url,
            "BOKVAR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "BOKVAR_VAR_DIR": str(var),
            "BOKVAR_KAFKA_SESSION_TIMEOUT_MS": str(FAST_GROUP["session_timeout_ms"]),
            "BOKVAR_KAFKA_HEARTBEAT_INTERVAL_MS": str(FAST_GROUP["heartbeat_interval_ms"]),
            "BOKVAR_KAFKA_REBALANCE_TIMEOUT_MS": str(FAST_GROUP["rebalance_timeout_ms"]),
        }
    )
    for name, port in ports.items():
        env[f"BOKVAR_{name.upper()}_PORT"] = str(port)
    if service == "notifier":
        env["BOKVAR_NOTIFIER_INGEST_URL"] = f"http://127.0.0.1:{ports['ingest']}"
    if service == "console":
        for other in ("ingest", "rules", "notifier", "cases"):
            env[f"BOKVAR_CONSOLE_{other.upper()}_URL"] = f"http://127.0.0.1:{ports[other]}"
    return env


async def _probe(service: str, env: dict[str, str]) -> bool:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HEALTHCHECK), service, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait() == 0


async def _run_job(args: list[str], env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(BOKVAR), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"bokvar {' '.join(args)}:\n{text[-3000:]}"
    return text


async def test_compose_commands_boot_every_service_and_stop_on_sigterm(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    ports = {name: _free_port() for name in SERVICES}
    envs = {
        name: _environment(name, database_url, broker, ports, tmp_path / "var")
        for name in (*SERVICES, "migrate", "topics")
    }
    await _run_job(["migrate"], envs["migrate"])
    await _run_job(["topics", "create"], envs["topics"])

    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in SERVICES}
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name in SERVICES:
            procs[name] = await asyncio.create_subprocess_exec(
                str(BOKVAR), "serve", name, env=envs[name], stdout=logs[name], stderr=logs[name]
            )
        for name in SERVICES:

            async def healthy(name: str = name) -> bool:
                if procs[name].returncode is not None:
                    log = (tmp_path / f"{name}.log").read_text()[-3000:]
                    raise AssertionError(f"{name} exited {procs[name].returncode}:\n{log}")
                return await _probe(name, envs[name])

            await wait_for(healthy, timeout=90, what=f"{name} healthy")
        async with httpx.AsyncClient(timeout=10) as client:
            for name, port in ports.items():

                async def ready(port: int = port) -> bool:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                    return response.status_code == 200

                await wait_for(ready, timeout=60, what=f"{name} ready")
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert metrics.status_code == 200

        # the documented `docker compose run --rm ingest bokvar simulate ...`: the ingest
        # container's settings are enough to create a key, push, read the results and get
        # the report from cases (a staff token signed with the stack's cases secret)
        simulate = [
            "simulate",
            *("--leases", "20", "--months", "1", "--settle", "3", "--timeout", "120"),
            *("--ingest-url", f"http://127.0.0.1:{ports['ingest']}"),
            *("--cases-url", f"http://127.0.0.1:{ports['cases']}"),
        ]
        out = await _run_job(simulate, envs["ingest"])
        pushed = re.search(r"(\d+) events for (\d+) leases", out)
        assert pushed and int(pushed[1]) > 0 and pushed[2] == "20", out[-3000:]
        report = re.search(r"^ *report.*$", out, re.MULTILINE)
        assert report and "unreachable" not in report[0] and "answered" not in report[0], out

        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            code = await asyncio.wait_for(proc.wait(), timeout=STOP_GRACE_SECONDS)
            # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM (143 in a
            # shell) is the clean exit; the lifespan's runtime.stopped proves the drain ran.
            assert code in (0, -signal.SIGTERM), f"{name} exited {code} on SIGTERM"
            output = (tmp_path / f"{name}.log").read_text()
            stopped = re.search(r'"event": ?"runtime\.stopped"', output) is not None
            assert stopped, f"{name} did not stop cleanly:\n{output[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for log in logs.values():
            log.close()
