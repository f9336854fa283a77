"""Kafka plumbing: client factories, topic admin and a batched, acknowledged sender.

Producers send through :class:`Sender`, which groups a batch by partition and uses
aiokafka's ``create_batch``/``send_batch`` (about four times the rate of per-message
``send`` on this hardware), then waits for every acknowledgement, so a caller can commit
its input offsets knowing its outputs are durable.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from shared.errors import TopicsMissing
from shared.settings import Settings
from shared.topics import DEADLETTER, TOPICS

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Dead letters carry the original bytes base64-encoded, so they can outgrow the input."""


@dataclass(frozen=True, slots=True)
class Out:
    """One record to produce: full topic name, key, value, and optionally its timestamp."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Kafka's default partitioner (murmur2), so our keys land where Java clients put them.

    >>> partition_for(b"card-1", 4), partition_for(b"card-1", 4) == partition_for(b"card-1", 4)
    (3, True)
    """
    if key is None:
        return fallback % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def make_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=settings.linger_ms,
        max_request_size=MAX_REQUEST_BYTES,
        max_batch_size=1024 * 1024,
    )
    return AIOKafkaProducer(**(options | overrides))


def make_consumer(settings: Settings, *topics: str, group: str | None, **overrides) -> AIOKafkaConsumer:
    """A consumer of the given logical topics; offsets are committed by hand, after outputs."""
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=min(settings.heartbeat_interval_ms, settings.session_timeout_ms // 3),
        rebalance_timeout_ms=settings.session_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=MAX_REQUEST_BYTES,
        fetch_max_bytes=4 * MAX_REQUEST_BYTES,
    )
    return AIOKafkaConsumer(*(settings.topic(t) for t in topics), **(options | overrides))


async def skip_to_end(consumer: AIOKafkaConsumer) -> None:
    """Move a started consumer (``auto_offset_reset="latest"``) to the real end of its topics.

    Tansu 0.6 answers ListOffsets(latest) with the base offset of a partition's last batch
    + 1, not its end, so "latest" re-reads up to a batch per partition of old records.
    Discarding until a poll comes back empty leaves the position at the end.
    """
    while await consumer.getmany(timeout_ms=500):
        pass


class Sender:
    """Sends a list of records in per-partition batches and waits for every ack."""

    def __init__(self, producer: AIOKafkaProducer):
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._round_robin = 0

    async def _partitions_of(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            found = await self.producer.partitions_for(topic)
            if not found:
                raise TopicsMissing(f"topic {topic!r} does not exist on the broker")
            self._partitions[topic] = sorted(found)
        return self._partitions[topic]

    async def send(self, records: Iterable[Out]) -> int:
        grouped: dict[tuple[str, int], list[Out]] = defaultdict(list)
        for rec in records:
            parts = await self._partitions_of(rec.topic)
            self._round_robin += 1
            grouped[rec.topic, parts[partition_for(rec.key, len(parts), self._round_robin)]].append(rec)
        acks = []
        for (topic, partition), recs in grouped.items():
            batch = self.producer.create_batch()
            for rec in recs:
                if batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp_ms) is None:
                    acks.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    if batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp_ms) is None:
                        raise ValueError(f"record of {len(rec.value)} bytes does not fit a batch")
            acks.append(await self.producer.send_batch(batch, topic, partition=partition))
        for ack in acks:
            await ack
        return sum(len(v) for v in grouped.values())


async def publish_one(settings: Settings, topic: str, key: bytes | None, value: bytes) -> None:
    """Send one record and wait for its ack: for commands (promote, retrain), not for streams."""
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), value, key=key)
    finally:
        await producer.stop()


def topic_specs(settings: Settings, names: Iterable[str] | None = None) -> list[NewTopic]:
    specs = []
    for name in names or TOPICS:
        t = TOPICS[name]
        configs = {"retention.ms": str(t.retention_ms)}
        if t.compact:
            configs["cleanup.policy"] = "compact"
        if name == DEADLETTER:
            configs["max.message.bytes"] = str(MAX_REQUEST_BYTES)
        specs.append(
            NewTopic(
                settings.topic(name),
                t.partitions or settings.partitions,
                settings.replication_factor,
                topic_configs=configs,
            )
        )
    return specs


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Create missing topics (if allowed), then check every one exists.

    A restarted in-memory broker comes back empty while producers are still
    acknowledged, so every service checks its topics at start-up instead of failing
    silently later.
    """
    wanted = topic_specs(settings, names)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if missing and settings.create_topics:
            log.info("creating topics %s", [s.name for s in missing])
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another replica won the race; the check below still runs
            existing = set(await admin.list_topics())
        still = sorted(s.name for s in wanted if s.name not in existing)
        if still:
            raise TopicsMissing(f"topics missing on {settings.kafka_bootstrap}: {', '.join(still)}")
    finally:
        await admin.close()
