"""`python3 dev.py up` stops in order on Ctrl-C (SIGINT) and SIGTERM, leaving nothing behind."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_LINES = ["ingest stopped", "rules stopped", "notifier stopped", "cases stopped", "stopped."]


def _ports(n: int) -> list[int]:
    """`n` different ports free on 127.0.0.1 now (held together while they are picked: a
    port picked and released, then picked again for another, would be one port for two)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def up_setup(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment of a `bokvar up` of its own under `tmp_path`.

    The services' ports and the broker's come from one pick: `bokvar up` picking the
    broker's port itself once took the one just picked for rules ("address already in use").
    """
    *services, broker = _ports(6)
    return ["--broker-port", str(broker)], _env(tmp_path, services)


def _env(tmp_path: Path, ports: list[int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
    env.update(
        {
            "BOKVAR_VAR_DIR": str(tmp_path / "var"),
            "BOKVAR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/bokvar.db",
            "BOKVAR_LOG_FORMAT": "json",
        }
    )
    names = ("INGEST", "RULES", "NOTIFIER", "CASES", "CONSOLE")
    for service, port in zip(names, ports, strict=True):
        env[f"BOKVAR_{service}_PORT"] = str(port)
    return env


class Output:
    """The merged output of a process, read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        """Read until a line contains `text`; fail on end of output or timeout."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"output ended before {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_dev_py_up_drains_in_order_and_leaves_nothing(sig: signal.Signals, tmp_path: Path) -> None:
    args, env = up_setup(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "dev.py"), "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = Output(proc)
    family: list[psutil.Process] = []
    try:
        out.wait_for("Bokvar is up.", timeout=180)
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 5  # the broker and four services
        assert (tmp_path / "var" / "broker.addr").exists()
        proc.send_signal(sig)
        out.wait_for("stopped.", timeout=120)
        assert proc.wait(timeout=30) == 0
    finally:
        for child in [psutil.Process(proc.pid), *family] if proc.poll() is None else family:
            with contextlib.suppress(psutil.Error):
                child.kill()  # only if the test failed: never leave a pipeline running
    text = "\n".join(out.lines)
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    where = [next(i for i, line in enumerate(out.lines) if want in line) for want in STOP_LINES]
    assert where == sorted(where), text
    assert not (tmp_path / "var" / "broker.addr").exists()
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], alive
