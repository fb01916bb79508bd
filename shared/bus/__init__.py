"""The Kafka bus: producer, consumer runner, outbox relay, topics, embedded broker."""

from shared.bus.admin import create_topics
from shared.bus.consumer import Batch, ConsumerRunner, Handler, Hooks, Received, SimulatedCrash
from shared.bus.outbox import OutboxRelay, add_to_outbox
from shared.bus.producer import Producer

__all__ = [
    "Batch",
    "ConsumerRunner",
    "Handler",
    "Hooks",
    "OutboxRelay",
    "Producer",
    "Received",
    "SimulatedCrash",
    "add_to_outbox",
    "create_topics",
]
