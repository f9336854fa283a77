"""The loop every consuming service runs: take a batch, handle it, send, then commit.

Delivery is at-least-once: offsets are committed only after every output of the batch
is acknowledged, so a crash replays the batch and idempotent handlers make the replay
harmless. Transient failures of Redis or Kafka are retried with backoff on the same
batch; bad input never reaches this level (handlers dead-letter it record by record).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Awaitable, Callable, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from shared import health, metrics
from shared.codec import encode
from shared.events import DeadLetter
from shared.kafka import Out, Sender
from shared.settings import Settings
from shared.topics import DEADLETTER

log = logging.getLogger(__name__)

SHUTDOWN_S = 10.0
TRANSIENT = (RedisConnectionError, RedisTimeoutError, KafkaConnectionError, KafkaTimeoutError, OSError)


class BatchHandler(Protocol):
    async def __call__(self, records: list[ConsumerRecord]) -> list[Out]:
        """Turn one consumed batch into the records to produce (dead letters included)."""


def dead_letter(settings: Settings, service: str, record: ConsumerRecord, error: str) -> Out:
    """The original bytes, where they came from and why they were refused."""
    metrics.DEADLETTERS.labels(service, error.split(":", 1)[0]).inc()
    letter = DeadLetter(
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value if record.value is not None else b"",
        error=error,
    )
    return Out(settings.topic(DEADLETTER), record.key, encode(letter))


def _next_offsets(records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
    return {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}


async def run_batches(
    service: str,
    consumer: AIOKafkaConsumer,
    sender: Sender,
    handler: BatchHandler,
    settings: Settings,
    stop: asyncio.Event,
    on_idle: Callable[[], Awaitable[list[Out]]] | None = None,
    ready_to_commit: Callable[[], bool] | None = None,
) -> None:
    """Consume until ``stop`` is set. ``on_idle`` runs when a poll returns nothing.

    Offsets are committed after each batch's outputs are acknowledged, or, with
    ``ready_to_commit``, only after a batch for which it says yes (a stateful consumer
    commits when its state is saved, so a restart replays what the state lacks).
    """
    uncommitted: dict[TopicPartition, int] = {}
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=0.1, max=10),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    while not stop.is_set():
        await health.heartbeat(service, consumer, settings)
        polled = await consumer.getmany(timeout_ms=100, max_records=settings.batch_max)
        if not polled:
            if on_idle is not None:
                await sender.send(await on_idle())
                if uncommitted and ready_to_commit is not None and ready_to_commit():
                    await _commit(service, consumer, uncommitted)
            continue
        records = [r for batch in polled.values() for r in batch]
        started = time.perf_counter()
        async for attempt in retrying:
            with attempt:  # the same batch again: nothing of a failed try was committed
                outs = await handler(records)
                await sender.send(outs)
        _count(service, records, outs)
        uncommitted.update(_next_offsets(records))
        if ready_to_commit is None or ready_to_commit():
            await _commit(service, consumer, uncommitted)
        metrics.BATCH_SECONDS.labels(service).observe(time.perf_counter() - started)


async def _commit(service: str, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(dict(offsets))
    except (CommitFailedError, IllegalStateError) as exc:
        # A rebalance took the partitions away; their new owner replays the batch and
        # idempotent handlers make that harmless.
        log.warning("%s: commit skipped after rebalance: %s", service, exc)
    offsets.clear()


def _count(service: str, records: list[ConsumerRecord], outs: list[Out]) -> None:
    for topic, n in Counter(r.topic for r in records).items():
        metrics.EVENTS_IN.labels(service, topic).inc(n)
    for topic, n in Counter(o.topic for o in outs).items():
        metrics.EVENTS_OUT.labels(service, topic).inc(n)


class Clients:
    """The real adapters a service is wired with, started and stopped together."""

    def __init__(self, settings: Settings, service: str, inputs: tuple[str, ...]):
        from shared.kafka import make_consumer, make_producer
        from shared.redis import make_redis

        self.settings = settings
        self.service = service
        self.redis = make_redis(settings)
        self.producer = make_producer(settings)
        self.membership = health.GroupMembership()
        self.consumer = make_consumer(settings, *inputs, group=settings.group(service), listener=self.membership)
        self.sender = Sender(self.producer)

    async def __aenter__(self) -> "Clients":
        from shared.kafka import wait_for_broker
        from shared.redis import wait_for_redis

        await wait_for_broker(self.settings)  # also creates/checks the topics
        await wait_for_redis(self.settings, self.redis)
        await self.producer.start()
        await self.consumer.start()
        health.watch(self.service, self.settings, self.membership)
        return self

    async def __aexit__(self, *exc) -> None:
        health.unwatch(self.service)
        # Bounded: with the broker gone, a client's stop retries forever.
        for closing in (self.consumer.stop(), self.producer.stop(), self.redis.aclose()):
            try:
                await asyncio.wait_for(closing, SHUTDOWN_S)
            except (asyncio.TimeoutError, *TRANSIENT) as exc:
                log.warning("shutdown: a client did not close cleanly: %r", exc)


async def run_service(
    service: str,
    settings: Settings,
    inputs: tuple[str, ...],
    make_handler: Callable[[Clients], BatchHandler],
    stop: asyncio.Event,
) -> None:
    """Wire a service's handler to real Kafka and Redis and run it until ``stop``."""
    async with Clients(settings, service, inputs) as clients:
        handler = make_handler(clients)
        log.info("%s: consuming %s", service, ", ".join(settings.topic(t) for t in inputs))
        await run_batches(service, clients.consumer, clients.sender, handler, settings, stop,
                          on_idle=getattr(handler, "on_idle", None),
                          ready_to_commit=getattr(handler, "ready_to_commit", None))
