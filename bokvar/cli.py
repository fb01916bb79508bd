"""The `bokvar` command.

Commands live in modules that define `add_arguments(parser)` and `run(args) -> int`;
COMMANDS maps each command name to its module, imported only when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "broker": ("bokvar.commands.broker", "run the embedded Kafka-protocol broker"),
    "topics": ("bokvar.commands.topics", "create the catalog's topics on the configured broker"),
    "migrate": ("bokvar.commands.migrate", "run every service's database migrations"),
    "makemigration": ("bokvar.commands.makemigration", "autogenerate a service migration"),
    "serve": ("bokvar.commands.serve", "run one service: ingest, rules, notifier or cases"),
    "up": ("bokvar.commands.up", "run the whole pipeline: broker, migrations, every service"),
    "simulate": ("bokvar.commands.simulate", "push a synthetic ERP history and summarise it"),
    "docs": ("bokvar.commands.docs", "regenerate event JSON Schemas and the settings table"),
    "audit": ("services.cases.cli", "verify the cases audit chain (audit verify)"),
    "clients": ("ingest.cli", "create, list and revoke ERP API clients (keys for the ingest API)"),
    "token": ("bokvar.commands.token", "mint a bearer JWT for the cases API (development)"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="bokvar", description="Bokvar: early warning against evictions."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `bokvar` console script."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    sys.exit(module.run(args))


if __name__ == "__main__":  # `python -m bokvar.cli ...`, as `python -m bokvar ...`
    main()
