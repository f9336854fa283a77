"""Test helpers over real clients: produce raw bytes, and collect a topic until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.kafka import make_consumer, make_producer
from shared.settings import Settings


async def produce(settings: Settings, topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for k, v in items:
            await producer.send(settings.topic(topic), value=v, key=k)
        await producer.flush()
    finally:
        await producer.stop()


class Collector:
    """Reads topics from the beginning (no group) and keeps what it saw."""

    def __init__(self, settings: Settings, *topics: str):
        self.settings = settings
        self.consumer: AIOKafkaConsumer = make_consumer(settings, *topics, group=None)
        self.records: dict[str, list[ConsumerRecord]] = {settings.topic(t): [] for t in topics}

    async def __aenter__(self) -> Collector:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    def of(self, topic: str) -> list[ConsumerRecord]:
        return self.records[self.settings.topic(topic)]

    async def until(self, done: Callable[[Collector], bool], timeout_s: float = 30.0) -> Collector:
        """Poll until ``done(self)`` holds; fail with what was seen when the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                seen = {t: len(v) for t, v in self.records.items()}
                raise AssertionError(f"condition not met within {timeout_s}s; records seen: {seen}")
            for tp, batch in (await self.consumer.getmany(timeout_ms=100)).items():
                self.records[tp.topic].extend(batch)
        return self

    async def settle(self, quiet_s: float = 1.0) -> Collector:
        """Keep reading until nothing new arrives for ``quiet_s`` (to prove no extras come)."""
        quiet_until = time.monotonic() + quiet_s
        while time.monotonic() < quiet_until:
            polled = await self.consumer.getmany(timeout_ms=100)
            for tp, batch in polled.items():
                self.records[tp.topic].extend(batch)
                quiet_until = time.monotonic() + quiet_s
        return self


async def delete_prefix(r: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=1000)]
    for i in range(0, len(keys), 1000):
        await r.unlink(*keys[i : i + 1000])


