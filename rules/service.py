"""Start the rules service's moving parts on a runtime: consumer, sweep loop, outbox relay."""

from __future__ import annotations

import asyncio

from rules.config import RulesSettings
from rules.consumer import TOPICS, make_handler
from rules.models import inbox, outbox
from rules.policy import DEFAULT_POLICY, OVERRIDES_DIR, PolicySet
from rules.sweep import sweep_loop
from shared.bus import ConsumerRunner
from shared.runtime import Runtime


def load_policies(settings: RulesSettings) -> PolicySet:
    """Load the active policy set the settings point at."""
    return PolicySet.load(
        settings.rules_policy_path or DEFAULT_POLICY,
        settings.rules_policy_overrides_dir or OVERRIDES_DIR,
    )


async def start_rules(rt: Runtime, settings: RulesSettings, policies: PolicySet) -> ConsumerRunner:
    """Join the consumer group and spawn the sweep loop.

    The member runs `rules_lanes` loops, each fetching and applying batches of its share
    of the partitions, so while one waits for the database (its statements, its commit)
    another evaluates: at month-end rules spends about as long waiting for PostgreSQL as
    computing (bench/RESULTS.md, throughput passes 8 and 9). One member of the group per
    process all the same: each member more costs every restart a longer rebalance.

    A batch that brought a watermark wakes the sweep once committed: the sweep evaluates
    the stages it released (`rules.consumer.make_handler`).
    """
    relay = rt.outbox_relay(outbox)
    due = asyncio.Event()

    async def wake_sweep() -> None:
        due.set()

    handler = make_handler(policies, rt.clock, wake_sweep=wake_sweep)
    runner = await rt.start_consumer(
        topics=TOPICS, handler=handler, inbox=inbox, outbox=outbox, lanes=settings.rules_lanes
    )

    async def sweep() -> None:
        await sweep_loop(
            rt.database,
            policies,
            rt.clock,
            rt.stopping,
            interval=settings.rules_sweep_interval_seconds,
            relay=relay,
            chunk=settings.rules_sweep_chunk,
            wake=due,
        )

    rt.spawn("rules-sweep", sweep)
    return runner
