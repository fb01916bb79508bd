"""Cost of one JSON log line through the services' logging, against writing it raw.

    python bench/log_lines.py [--lines 20000] [--runs 5] [--to FILE]

At info level (production's) rules writes a `rules.signal_emitted` line per signal: 6,000
at a month-end of 20,000 leases (bench/RESULTS.md, issue 14). Measures, `--runs` times,
the µs per line of that call through `shared.logging.configure_logging("info", "json")`
(context, redaction, level, timestamp, rendering, the write), and of the raw floor: the
same fields serialised with orjson and written to the same stream. The lines go to
/dev/null, or to `--to FILE` (to count what writing to a disk or a collector's pipe costs).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/log_lines.py` puts bench/ first on sys.path; the repository root is needed
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import os
import statistics
import time

import orjson
import structlog

from shared.logging import configure_logging


def through_logging(n: int) -> float:
    log = structlog.get_logger("bench")
    t0 = time.perf_counter()
    for i in range(n):
        log.info(
            "rules.signal_emitted",
            lease_id=f"B{i:07d}",
            signal_id=f"B{i:07d}:2026-03:late_rent_detected",
            type="se.bokvar.risk.signal_raised.v1",
        )
    return (time.perf_counter() - t0) / n


def raw(n: int) -> float:
    out = sys.stderr.buffer
    t0 = time.perf_counter()
    for i in range(n):
        line = {
            "lease_id": f"B{i:07d}",
            "signal_id": f"B{i:07d}:2026-03:late_rent_detected",
            "type": "se.bokvar.risk.signal_raised.v1",
            "event": "rules.signal_emitted",
            "level": "info",
        }
        out.write(orjson.dumps(line) + b"\n")
        out.flush()
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--to", default=os.devnull, help="where the lines go")
    args = parser.parse_args()
    sys.stderr = open(args.to, "w")  # noqa: SIM115  # the services log to stderr
    configure_logging("info", "json")
    ours, floor = [], []
    for _ in range(args.runs):
        ours.append(through_logging(args.lines))
        floor.append(raw(args.lines))
    us_ours, us_raw = 1e6 * statistics.median(ours), 1e6 * statistics.median(floor)
    print(
        f"{args.lines} lines x {args.runs} runs (medians): logging {us_ours:.1f} us per line, "
        f"raw orjson + write {us_raw:.1f} us (ratio raw/logging {us_raw / us_ours:.2f})",
    )


if __name__ == "__main__":
    main()
