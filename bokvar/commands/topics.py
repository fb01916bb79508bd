"""`bokvar topics`: create the catalog's topics (and DLQs) on the configured broker."""

from __future__ import annotations

import argparse
import asyncio

from shared.bus import create_topics
from shared.bus.broker import resolve_bootstrap_servers, wait_for_broker
from shared.config import CommonSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"])


def run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    servers = resolve_bootstrap_servers(settings.kafka_bootstrap_servers, settings.var_dir)

    async def go() -> list[str]:
        await wait_for_broker(servers)
        return await create_topics(
            servers,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )

    created = asyncio.run(go())
    print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")
    return 0
