"""The history of model versions, read from ``model.versions`` (the topic is the registry)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.codec import DecodeError, decode
from shared.events import ModelVersionPublished
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import MODEL_VERSIONS, TOPICS


@asynccontextmanager
async def reading(settings: Settings) -> AsyncIterator[tuple[AIOKafkaConsumer, dict[TopicPartition, int]]]:
    """A consumer of ``model.versions`` from its beginning (no group: every reader sees all),
    and the end offsets that mark "history read"."""
    consumer = make_consumer(settings, group=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic(MODEL_VERSIONS), p)
                      for p in range(TOPICS[MODEL_VERSIONS].partitions or 1)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield consumer, await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def history(settings: Settings) -> list[ModelVersionPublished]:
    """Every readable announcement, oldest first."""
    events = []
    async with reading(settings) as (consumer, end):
        wait = FetchWait("registry", consumer, settings.fetch_max_wait_ms)
        while await behind(consumer, end):
            for batch in (await wait.poll(timeout_ms=200)).values():
                for record in batch:
                    try:
                        events.append(decode(record.value, ModelVersionPublished))
                    except DecodeError:
                        continue
    return sorted(events, key=lambda e: e.published_at)


async def behind(consumer, end: dict[TopicPartition, int]) -> bool:
    """Whether the consumer has yet to reach ``end`` on any partition."""
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False


def champion(events: list[ModelVersionPublished]) -> ModelVersionPublished | None:
    """The version in service: the latest announced champion."""
    return next((e for e in reversed(events) if e.status == "champion"), None)


def next_version(events: list[ModelVersionPublished]) -> str:
    """
    >>> next_version([])
    'v1'
    """
    numbers = [int(m.group(1)) for e in events if (m := re.fullmatch(r"v(\d+)", e.version))]
    return f"v{max(numbers, default=0) + 1}"
