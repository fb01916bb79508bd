"""`bokvar makemigration SERVICE -m MESSAGE`: autogenerate a migration from the models."""

from __future__ import annotations

import argparse
import asyncio

from shared.db.migrate import SERVICE_PACKAGES, make_revision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=list(SERVICE_PACKAGES))
    parser.add_argument("-m", "--message", required=True)


def run(args: argparse.Namespace) -> int:
    asyncio.run(make_revision(args.service, args.message))
    return 0
