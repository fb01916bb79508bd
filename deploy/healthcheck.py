#!/usr/bin/env python3
"""Container health probe of a Bokvar service: GET /healthz with the standard library only.

    bokvar-healthcheck            # the service named by PID 1's command (`bokvar serve <svc>`)
    bokvar-healthcheck rules      # an explicit service

Exit 0 when /healthz answers 200, 1 otherwise. The port is `BOKVAR_<SVC>_PORT` or the
service's default. A container whose command is not `bokvar serve <svc>` (the one-shot
`bokvar migrate` and `bokvar topics create`) has no HTTP port and is reported healthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# Must match the `<svc>_port` defaults of the settings classes (a test checks it).
DEFAULT_PORTS = {"ingest": 8001, "rules": 8002, "notifier": 8003, "cases": 8004, "console": 8005}


def service_from_cmdline(cmdline: bytes) -> str | None:
    """Return the service of a `... bokvar serve <svc>` command line (NUL-separated), or None."""
    args = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    for i, arg in enumerate(args[:-1]):
        if arg == "serve" and args[i + 1] in DEFAULT_PORTS:
            return args[i + 1]
    return None


def port_of(service: str, environ: dict[str, str]) -> int:
    """Return the HTTP port of `service` from the environment or its default."""
    return int(environ.get(f"BOKVAR_{service.upper()}_PORT", DEFAULT_PORTS[service]))


def probe(url: str, timeout: float = 4.0) -> bool:
    """Return whether GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """Probe the service's /healthz; return the exit code."""
    if argv:
        service: str | None = argv[0]
        if service not in DEFAULT_PORTS:
            print(f"unknown service {service!r}", file=sys.stderr)
            return 2
    else:
        try:
            service = service_from_cmdline(Path("/proc/1/cmdline").read_bytes())
        except OSError:
            service = None
        if service is None:
            return 0
    port = port_of(service, dict(os.environ))
    ok = probe(f"http://127.0.0.1:{port}/healthz")
    if not ok:
        print(f"{service}: /healthz on port {port} did not answer 200", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
