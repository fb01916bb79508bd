"""`bokvar clients create|list|revoke`: ERP API keys for ingest.

bokvar clients create --org ORG --name NAME   # a new key, printed once
bokvar clients list [--org ORG]                # id, org, name, key prefix, created, revoked
bokvar clients revoke ID                       # refuse that client's key from now on
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ingest.clients import create_client, list_clients, revoke_client
from ingest.config import IngestSettings
from ingest.service import AUTH_CACHE_SECONDS
from shared.db import Database
from shared.db.migrate import migrate

_ORG = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an API client and print its key once")
    create.add_argument("--org", required=True, help="organisation id the key writes for")
    create.add_argument("--name", required=True, help="a name for the client (e.g. the ERP)")
    listing = sub.add_parser("list", help="list API clients (never their keys)")
    listing.add_argument("--org", help="only this organisation's clients")
    revoke = sub.add_parser("revoke", help="revoke an API client: its key is refused")
    revoke.add_argument("id", type=_client_id, help="the client's id (from `bokvar clients list`)")


def _client_id(text: str) -> int:
    """A client id as `bokvar clients list` shows it: a positive 64-bit integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a client id (see `bokvar clients list`)")
    return value


async def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    database = Database(IngestSettings().database_url, "ingest")
    try:
        await migrate(database)
        return await work(database)
    finally:
        await database.dispose()


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(getattr(args, "org", None))
    if args.action == "revoke":
        return _revoke(args.id)
    if not _ORG.match(args.org):
        print("--org: 1-64 characters of A-Z a-z 0-9 . _ -")
        return 2
    key = asyncio.run(_with_database(lambda db: create_client(db, args.org, args.name)))
    print(f"API key for {args.org} ({args.name}); store it now, it is not shown again:")
    print(key)
    return 0


def _list(org: str | None) -> int:
    rows = asyncio.run(_with_database(lambda db: list_clients(db, org)))
    print("id\torg\tname\tkey prefix\tcreated (UTC)\trevoked (UTC)")
    for r in rows:
        revoked = f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "-"
        print(
            f"{r.id}\t{r.org_id}\t{r.name}\t{r.key_prefix}…\t"
            f"{r.created_at:%Y-%m-%d %H:%M}\t{revoked}"
        )
    return 0


def _revoke(client_id: int) -> int:
    row = asyncio.run(_with_database(lambda db: revoke_client(db, client_id)))
    if row is None:
        print(f"no API client with id {client_id} (see `bokvar clients list`)")
        return 2
    print(
        f"revoked API client {row.id} of {row.org_id} ({row.name}, key {row.key_prefix}…) "
        f"at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC; a running ingest refuses the key within "
        f"{AUTH_CACHE_SECONDS:g} s"
    )
    return 0
