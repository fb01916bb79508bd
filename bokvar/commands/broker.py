"""`bokvar broker`: the embedded broker in the foreground, topics created."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from shared.bus import create_topics
from shared.bus.broker import ADDRESS_FILE, EmbeddedBroker
from shared.config import CommonSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")


def run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    broker = EmbeddedBroker(args.port, log_path=settings.var_dir / "broker.log")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    broker.start()
    try:
        asyncio.run(create_topics(broker.bootstrap_servers, partitions=settings.topic_partitions))
        broker.write_address(settings.var_dir)
        print(
            f"embedded broker on {broker.bootstrap_servers} (memory only); "
            f"address in {settings.var_dir / ADDRESS_FILE}. Ctrl-C stops it.",
            flush=True,
        )
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop and broker.alive():
            time.sleep(0.5)
    finally:
        broker.stop()
        (settings.var_dir / ADDRESS_FILE).unlink(missing_ok=True)
    return 0
