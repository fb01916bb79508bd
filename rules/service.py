"""Start the rules service's moving parts on a runtime: consumer, sweep loop, outbox relay."""

from __future__ import annotations

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


async def start_rules(
    rt: Runtime, settings: RulesSettings, policies: PolicySet
) -> list[ConsumerRunner]:
    """Join the consumer group (`rules_consumers` members) and spawn the sweep loop.

    Each member owns its share of the partitions and applies its batches in transactions
    of its own, so while one waits for the database (its statements, its commit) another
    decodes and evaluates: at month-end rules spends about as long waiting for PostgreSQL
    as computing (bench/RESULTS.md, throughput pass 8).
    """
    handler = make_handler(policies, rt.clock)
    runners = [
        await rt.start_consumer(topics=TOPICS, handler=handler, inbox=inbox, outbox=outbox)
        for _ in range(settings.rules_consumers)
    ]
    relay = rt.outbox_relay(outbox)

    async def sweep() -> None:
        await sweep_loop(
            rt.database,
            policies,
            rt.clock,
            rt.stopping,
            interval=settings.rules_sweep_interval_seconds,
            relay=relay,
            chunk=settings.rules_sweep_chunk,
        )

    rt.spawn("rules-sweep", sweep)
    return runners
