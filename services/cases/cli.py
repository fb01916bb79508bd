"""`bokvar audit verify`: check the cases audit chain; exit 1 naming the first broken row.

Checks the links, the chain's end against the head row, and any anchors kept outside the
database: `--anchor ID:HASH:ROWS` (repeatable) or `--anchors FILE`, a JSON log whose
`cases.audit_anchor` lines the cases service wrote.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import orjson

from services.cases.anchoring import ANCHOR_EVENT
from services.cases.audit import Anchor, Verdict
from services.cases.config import CasesSettings
from services.cases.store import AuditStore
from shared.db import Database


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `verify`."""
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify_cmd = sub.add_parser("verify", help="verify the hash chain of the cases audit log")
    verify_cmd.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="ID:HASH:ROWS",
        help="a head recorded elsewhere (as `bokvar audit verify` prints it); repeatable",
    )
    verify_cmd.add_argument(
        "--anchors",
        type=Path,
        default=None,
        metavar="LOGFILE",
        help=f"a JSON log holding the service's `{ANCHOR_EVENT}` lines",
    )


def parse_anchor(text: str) -> Anchor:
    """Parse `ID:HASH:ROWS`."""
    last_id, last_hash, rows = text.split(":")
    return Anchor(int(last_id), last_hash, int(rows))


def read_anchors(path: Path) -> list[Anchor]:
    """Return the anchors of a JSON log (other lines are skipped)."""
    found: list[Anchor] = []
    for line in path.read_bytes().splitlines():
        if ANCHOR_EVENT.encode() not in line:
            continue
        try:
            entry = orjson.loads(line)
            if entry.get("event") == ANCHOR_EVENT:
                found.append(Anchor(int(entry["last_id"]), entry["last_hash"], int(entry["rows"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return found


async def verify(database_url: str, anchors: list[Anchor] | None = None) -> Verdict:
    """Return the verdict on the chain, its head and the anchors."""
    database = Database(database_url, "cases")
    try:
        async with database.sessionmaker() as session:
            return await AuditStore(session).check(anchors or [])
    finally:
        await database.dispose()


def run(args: argparse.Namespace) -> int:
    """Verify the chain; 0 when intact, 1 with the first broken row id otherwise."""
    settings = CasesSettings()
    anchors = [parse_anchor(a) for a in args.anchor]
    if args.anchors is not None:
        anchors += read_anchors(args.anchors)
    verdict = asyncio.run(verify(settings.database_url, anchors))
    if verdict.first_broken is not None:
        print(
            f"audit chain BROKEN at row id {verdict.first_broken} ({verdict.rows} rows "
            f"checked): {verdict.problem}"
        )
        return 1
    head = asyncio.run(_head(settings.database_url))
    where = (
        f"; record the head elsewhere: {head.last_id}:{head.last_hash}:{head.rows}" if head else ""
    )
    print(f"audit chain OK ({verdict.rows} rows); {len(anchors)} anchors checked{where}")
    return 0


async def _head(database_url: str) -> Anchor | None:
    database = Database(database_url, "cases")
    try:
        async with database.sessionmaker() as session:
            return await AuditStore(session).head()
    finally:
        await database.dispose()
