"""`bokvar serve SERVICE`: run one service in the foreground."""

from __future__ import annotations

import argparse
import importlib

MODULES = {
    "ingest": "ingest.__main__",
    "rules": "rules.__main__",
    "notifier": "notifier.__main__",
    "cases": "services.cases.__main__",
    "console": "services.console.__main__",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=list(MODULES))


def run(args: argparse.Namespace) -> int:
    importlib.import_module(MODULES[args.service]).main()
    return 0
