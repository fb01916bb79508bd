"""`bokvar clients create --org ORG --name NAME`: create an ERP API key (printed once)."""

from __future__ import annotations

import argparse
import asyncio
import re

from ingest.clients import create_client
from ingest.config import IngestSettings
from shared.db import Database
from shared.db.migrate import migrate

_ORG = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an API client and print its key once")
    create.add_argument("--org", required=True, help="organisation id the key writes for")
    create.add_argument("--name", required=True, help="a name for the client (e.g. the ERP)")


async def _create(settings: IngestSettings, org: str, name: str) -> str:
    database = Database(settings.database_url, "ingest")
    try:
        await migrate(database)
        return await create_client(database, org, name)
    finally:
        await database.dispose()


def run(args: argparse.Namespace) -> int:
    if not _ORG.match(args.org):
        print("--org: 1-64 characters of A-Z a-z 0-9 . _ -")
        return 2
    key = asyncio.run(_create(IngestSettings(), args.org, args.name))
    print(f"API key for {args.org} ({args.name}); store it now, it is not shown again:")
    print(key)
    return 0
