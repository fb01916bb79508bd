"""Topic creation from the catalog."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.topics import CATALOG, DLQ_RETENTION_MS

TOPIC_ALREADY_EXISTS = 36


async def create_topics(
    bootstrap_servers: str, *, partitions: int = 6, replication_factor: int = 1
) -> list[str]:
    """Create every catalog topic and its DLQ that does not exist yet; return those created."""
    wanted: list[NewTopic] = []
    for topic in CATALOG:
        wanted.append(
            NewTopic(
                topic.name,
                partitions,
                replication_factor,
                topic_configs={"retention.ms": str(topic.retention_ms)},
            )
        )
        wanted.append(
            NewTopic(
                topic.dlq,
                1,
                replication_factor,
                topic_configs={"retention.ms": str(DLQ_RETENTION_MS)},
            )
        )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="bokvar-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"creating topic {name} failed: {code} {message}")
        return created
    finally:
        await admin.close()
