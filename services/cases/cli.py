"""`bokvar audit verify`: check the cases audit chain; exit 1 naming the first broken row."""

from __future__ import annotations

import argparse
import asyncio

from services.cases.config import CasesSettings
from services.cases.store import AuditStore
from shared.db import Database


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `verify`."""
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    sub.add_parser("verify", help="verify the hash chain of the cases audit log")


async def verify(database_url: str) -> tuple[int, int | None]:
    """Return (rows checked, first broken row id or None)."""
    database = Database(database_url, "cases")
    try:
        async with database.sessionmaker() as session:
            return await AuditStore(session).verify()
    finally:
        await database.dispose()


def run(args: argparse.Namespace) -> int:
    """Verify the chain; 0 when intact, 1 with the first broken row id otherwise."""
    settings = CasesSettings()
    rows, broken = asyncio.run(verify(settings.database_url))
    if broken is not None:
        print(f"audit chain BROKEN at row id {broken} ({rows} rows checked)")
        return 1
    print(f"audit chain OK ({rows} rows)")
    return 0
