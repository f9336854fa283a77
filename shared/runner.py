"""The loop every consuming service runs: take a batch, handle it, send, then commit.

Delivery is at-least-once: offsets are committed only after every output of the batch
is acknowledged, so a crash replays the batch and idempotent handlers make the replay
harmless. Transient failures of Redis or Kafka are retried with backoff on the same
batch (and on the idle-time hook); bad input never reaches this level: what does not
decode as its topic's event is dead-lettered at the boundary (``boundary.py``), and
handlers dead-letter what their domain refuses.

A service is wired once, by its :class:`ServiceSpec`: its inputs, and a composition root
``build(clients, settings, stop)`` that yields its handler.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, before_sleep_log, retry_if_exception_type, wait_exponential

from shared import health, metrics
from shared.boundary import Boundary, Inbound, dead_letter
from shared.kafka import Out, Sender
from shared.settings import Settings
from shared.stall import FetchWait, StallWatch, lagging
from shared.trusted import View

__all__ = ["BatchHandler", "Clients", "Inbound", "ServiceSpec", "dead_letter", "run_batches", "run_service"]

log = logging.getLogger(__name__)

SHUTDOWN_S = 10.0
TRANSIENT = (RedisConnectionError, RedisTimeoutError, KafkaConnectionError, KafkaTimeoutError, OSError)


class BatchHandler(Protocol):
    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        """Turn one consumed batch (decoded, in consumed order) into the records to produce.

        Optional hooks, found by name: ``on_idle()`` runs when a poll returns nothing and
        returns records to produce; ``ready_to_commit()`` is asked after each batch's (and
        each idle call's) outputs are acknowledged (a stateful consumer commits when its
        state is saved).
        """


@dataclass(frozen=True)
class ServiceSpec:
    """How a service is wired: read once by the runner, and by the test of the topic table."""

    name: str
    inputs: tuple[str, ...]
    """The topics consumed in the service's consumer group (names from ``shared.topics``)."""
    build: Callable[[Clients, Settings, asyncio.Event], AbstractAsyncContextManager[BatchHandler]]
    """The composition root: wires real adapters into the handler, and tears down after."""
    follows: tuple[str, ...] = ()
    """Topics every replica reads whole, outside the group (scoring follows ``model.versions``)."""
    raw: bool = False
    """Hand over undecoded records (``Inbound.event`` is None): ingest, which validates producer bytes."""
    views: Mapping[str, type[View]] = field(default_factory=dict)
    """Inputs read as a view of their event (``shared.trusted.View``): only the fields the service uses."""
    first: tuple[str, ...] = ()
    """Inputs read before the others (labels before transactions): see :func:`take_first`."""


CATCH_UP_MS = 50
"""How long one read of the ``first`` inputs waits for records the consumer knows are there."""
CATCH_UP_S = 2.0
"""How long a batch keeps reading them (Tansu can answer empty while a partition is behind)."""


async def take_first(consumer: AIOKafkaConsumer, first: frozenset[str], polled: dict[TopicPartition, list],
                     max_records: int, fetch_wait: FetchWait | None = None) -> dict[TopicPartition, list]:
    """``polled``, with what the broker held of the ``first`` topics when it answered.

    Kafka orders records within a partition only, and a consumer of two topics gets each
    from its own fetch: a label produced before a transaction can be read after it, and the
    transaction's features then miss a label they should count (a merchant's labels of the
    hours before it). So before a batch holding other records is handled, a held ``first``
    partition whose high watermark (as the last fetch saw it, the one that brought the
    batch when the broker leads both) is past the position is read too, up to that high
    watermark: the handler gets those labels in the same batch and applies them first.
    Tansu answers a fetch with what it gathers within the fetch wait, and under load a
    partition behind can come back empty (``shared/stall.py``): the reads go on for up to
    ``CATCH_UP_S``, an empty one widening ``fetch_wait``. Nothing is asked when no
    ``first`` partition is behind, the usual case.
    """
    if not first or all(tp.topic in first for tp in polled):
        return polled
    targets = await lagging(consumer, first)
    out, deadline = dict(polled), time.monotonic() + CATCH_UP_S
    while targets and time.monotonic() < deadline:
        more = await consumer.getmany(*targets, timeout_ms=CATCH_UP_MS, max_records=max_records)
        if fetch_wait is not None:
            await fetch_wait.after(more)
        for tp, records in more.items():
            out[tp] = out.get(tp, []) + records
        try:
            targets = {tp: end for tp, end in targets.items() if end > await consumer.position(tp)}
        except IllegalStateError:
            break  # revoked meanwhile: what was read goes in this batch
    return out


def _next_offsets(records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
    return {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}


async def run_batches(
    service: str,
    consumer: AIOKafkaConsumer,
    sender: Sender,
    handler: BatchHandler,
    boundary: Boundary,
    settings: Settings,
    stop: asyncio.Event,
    on_idle: Callable[[], Awaitable[list[Out]]] | None = None,
    ready_to_commit: Callable[[], bool] | None = None,
    stalls: StallWatch | None = None,
    fetch_wait: FetchWait | None = None,
    first: frozenset[str] = frozenset(),
) -> None:
    """Consume until ``stop`` is set. ``on_idle`` runs when a poll returns nothing, inside
    the same retry as a batch: its outputs are sent like a batch's.

    Offsets are committed after each batch's outputs are acknowledged, or, with
    ``ready_to_commit``, only after a batch for which it says yes (a stateful consumer
    commits when its state is saved, so a restart replays what the state lacks).
    ``fetch_wait`` widens the fetch wait while fetches come back empty behind, ``stalls``
    logs and counts held partitions that bring nothing while the broker holds more
    (``shared/stall.py``). Records of the ``first`` topics (full names) the broker held
    when a batch was fetched come in that batch (:func:`take_first`).
    """
    uncommitted: dict[TopicPartition, int] = {}
    log_retry = before_sleep_log(log, logging.WARNING)

    def still_alive(state: RetryCallState) -> None:
        # Retrying through an outage is the loop working (readiness says what is missing);
        # a liveness failure here would only restart a process that is waiting correctly.
        log_retry(state)
        health.HEALTH.beat(service)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=0.1, max=10),
        before_sleep=still_alive,
        reraise=True,
    )
    while not stop.is_set():
        await health.heartbeat(service, consumer, settings)
        if stalls is not None:
            await stalls.check()
        polled = await consumer.getmany(timeout_ms=100, max_records=settings.batch_max)
        if fetch_wait is not None:
            await fetch_wait.after(polled)
        if stalls is not None:
            stalls.polled(polled)
        if not polled:
            if on_idle is not None:
                async for attempt in retrying:
                    with attempt:
                        await sender.send(await on_idle())
                # asked after the idle outputs too: a handler learns they were acknowledged
                if ready_to_commit is not None and ready_to_commit() and uncommitted:
                    await _commit(service, consumer, uncommitted)
            continue
        polled = await take_first(consumer, first, polled, settings.batch_max, fetch_wait)
        records = [r for batch in polled.values() for r in batch]
        started = time.perf_counter()
        inbound, letters = boundary.decode(records)  # what does not decode is dead-lettered here
        async for attempt in retrying:
            with attempt:  # the same batch again: nothing of a failed try was committed
                outs = letters + await handler(inbound)
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
        self.fetch_wait = FetchWait(service, self.consumer, settings.fetch_max_wait_ms)
        self.stalls = StallWatch(service, self.consumer, settings.stall_after_s)
        self.sender = Sender(self.producer)

    async def __aenter__(self) -> Clients:
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
                async with asyncio.timeout(SHUTDOWN_S):  # not wait_for: see shared.lifecycle.wait_set
                    await closing
            except (TimeoutError, *TRANSIENT) as exc:
                log.warning("shutdown: a client did not close cleanly: %r", exc)


async def run_service(spec: ServiceSpec, settings: Settings, stop: asyncio.Event) -> None:
    """Wire a service to real Kafka and Redis through its composition root; run until ``stop``."""
    async with Clients(settings, spec.name, spec.inputs) as clients:
        async with spec.build(clients, settings, stop) as handler:
            _freeze_what_lives_forever()
            log.info("%s: consuming %s", spec.name, ", ".join(settings.topic(t) for t in spec.inputs))
            boundary = Boundary(spec.name, settings, spec.inputs, raw=spec.raw, views=spec.views)
            await run_batches(spec.name, clients.consumer, clients.sender, handler, boundary, settings, stop,
                              on_idle=getattr(handler, "on_idle", None),
                              ready_to_commit=getattr(handler, "ready_to_commit", None),
                              stalls=clients.stalls, fetch_wait=clients.fetch_wait,
                              first=frozenset(settings.topic(t) for t in spec.first))


def _freeze_what_lives_forever() -> None:
    """Keep the cyclic garbage collector off what a built service holds until it exits.

    A service imports ~120,000 tracked objects (pydantic, numpy, River and what they pull
    in) and builds its handler on top. The objects each batch allocates trigger a full
    collection every ~10,000 events, and each walked that whole heap again: ~40 % of the
    monitor's decoding time (``python -m fraudstream.bench.hops``). ``gc.freeze`` moves what
    is alive now to a generation that is never collected; what is garbage is collected
    first, so nothing is frozen that could go (reference counting still frees the rest).
    """
    gc.collect()
    gc.freeze()
