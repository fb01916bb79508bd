"""Service processes: start, wait until healthy, stop (SIGTERM) or kill (-9), and group lag.

Used by `bokvar up` and by the end-to-end tests, so both run services the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.bus.broker import detach_and_die_with_parent

PORT_SETTINGS = {
    "ingest": ("BOKVAR_INGEST_PORT", 8001),
    "rules": ("BOKVAR_RULES_PORT", 8002),
    "notifier": ("BOKVAR_NOTIFIER_PORT", 8003),
    "cases": ("BOKVAR_CASES_PORT", 8004),
    "console": ("BOKVAR_CONSOLE_PORT", 8005),
}
# What each service consumes, for draining before a stop.
CONSUMES: dict[str, tuple[str, ...]] = {
    "rules": ("lease.events", "ledger.events", "complaint.events", "case.events"),
    "notifier": ("risk.signals", "lease.events"),
    "cases": ("risk.signals", "notification.events", "lease.events"),
}


class ServiceProcess:
    """One `bokvar serve SERVICE` child process."""

    def __init__(
        self, service: str, env: Mapping[str, str], *, log_dir: Path | None = None
    ) -> None:
        self.service = service
        self.env = dict(env)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def port(self) -> int:
        """Return the HTTP port the service listens on."""
        name, default = PORT_SETTINGS[self.service]
        return int(self.env.get(name, default))

    @property
    def url(self) -> str:
        """Return the service's base URL."""
        return f"http://{self.env.get('BOKVAR_HOST', '127.0.0.1')}:{self.port}"

    def start(self) -> None:
        """Start the process (stdout/stderr to var/logs/<service>.log when log_dir is set)."""
        out: int | IO[bytes] = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{self.service}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bokvar.cli_main", "serve", self.service],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=detach_and_die_with_parent,
        )

    def exit_code(self) -> int | None:
        """Return the exit code if the process ended, else None."""
        return None if self.proc is None else self.proc.poll()

    async def wait_healthy(self, timeout: float = 60.0, path: str = "/healthz") -> None:
        """Wait until the service answers 200 on `path`; raise if it exits or times out."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                code = self.exit_code()
                if code is not None:
                    raise RuntimeError(f"{self.service} exited with code {code} while starting")
                try:
                    if (await client.get(self.url + path)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.service} not healthy after {timeout}s")
                await asyncio.sleep(0.1)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """Stop with SIGTERM (graceful: the batch finishes, the outbox flushes)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        """Kill with SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def group_lag(bootstrap_servers: str, group: str, topics: Sequence[str]) -> int:
    """Return how many records of `topics` the consumer group has not committed yet."""
    # A consumer that never subscribes reads the group's committed offsets without joining.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())
        ]
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            done = await consumer.committed(tp)
            lag += max(0, end - (done or 0))
        return lag
    finally:
        await consumer.stop()


async def wait_drained(
    bootstrap_servers: str, groups: Sequence[str], *, timeout: float = 60.0
) -> bool:
    """Wait until every group in `groups` has consumed all it reads; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lags = [await group_lag(bootstrap_servers, g, CONSUMES[g]) for g in groups]
        if not any(lags):
            return True
        await asyncio.sleep(0.3)
    return False
