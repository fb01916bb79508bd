"""`bokvar migrate`: bring every service's tables to the latest migration."""

from __future__ import annotations

import argparse
import asyncio

from shared.config import CommonSettings
from shared.db import Database
from shared.db.migrate import SERVICE_PACKAGES, migrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "services",
        nargs="*",
        choices=[*SERVICE_PACKAGES, []],
        help="services to migrate (default: all)",
    )


async def migrate_all(database_url: str, services: list[str]) -> None:
    """Migrate the given services' schemas in `database_url`."""
    for service in services:
        database = Database(database_url, service)
        try:
            await migrate(database)
        finally:
            await database.dispose()


def run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    services = list(args.services) or list(SERVICE_PACKAGES)
    asyncio.run(migrate_all(settings.database_url, services))
    print(f"migrated: {', '.join(services)}")
    return 0
