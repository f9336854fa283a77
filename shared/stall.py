"""A consumer behind its partitions must keep getting records: the fetch wait, and a stall alarm.

The one-hour soak (issue 14, ``docs/faults.md``) saw ingest stop reading ``transactions.raw``
with nothing logged, twice: once ingest fell behind (the cores busy), no record came again.
The cause is how Tansu answers a fetch. It builds its answer within the request's
``max_wait``, at a cost that grows with the number of record batches it has to return; at
``fetch_max_wait_ms`` = 10 (kept low because Tansu holds every fetch that long, so it is
the latency of every hop) a backlog of ~20 k single-record batches never fits, and every
fetch comes back empty, with the partition's high watermark far past the position. On the
soak's broker, read from the stuck position: 0 records in 3 s at 10 ms, 315 at 20 ms,
25,820 at 40 ms and the whole backlog (81,283) at 80 ms. A Kafka broker answers with what it
has whatever ``max_wait``; a consumer cannot assume it.

- :class:`FetchWait` widens the wait while the consumer is behind and its fetches come
  back empty (doubling, up to ``MAX_WAIT_MS``) and narrows it back to the setting once
  caught up. Exported as ``fraudstream_fetch_wait_ms``.
- :class:`StallWatch` is the alarm for whatever else stops a partition: one held that
  brought no record for ``after_s`` over at least ``MIN_POLLS`` polls (a batch retried
  through a Redis outage polls nothing, and is not a stall) while the broker holds records
  past the position is logged and counted (``fraudstream_partition_stalls_total``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from shared import metrics

log = logging.getLogger(__name__)

MAX_WAIT_MS = 1000
"""The widest fetch wait: a second of latency at most, once caught up it narrows again."""
MIN_POLLS = 10
"""Polls without a record from a partition before it can be stalled."""


async def lagging(consumer: AIOKafkaConsumer, topics: frozenset[str] | None = None) -> dict[TopicPartition, int]:
    """The held partitions (of ``topics``, or all) whose high watermark, as of the last fetch,
    is past the position: their high watermarks."""
    out = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp) if topics is None or tp.topic in topics else None
        if highwater is None:
            continue  # nothing fetched from it yet, or not asked for
        try:
            if highwater > await consumer.position(tp):
                out[tp] = highwater
        except IllegalStateError:
            continue  # revoked since assignment() was read
    return out


async def behind(consumer: AIOKafkaConsumer) -> bool:
    """Does the broker hold records past the position of a held partition (as of the last fetch)?"""
    return bool(await lagging(consumer))


class FetchWait:
    """The fetch wait of one consumer: its setting, widened while fetches come back empty behind."""

    def __init__(self, service: str, consumer: AIOKafkaConsumer, base_ms: int, max_ms: int = MAX_WAIT_MS):
        self.service, self.consumer = service, consumer
        self.base_ms, self.max_ms = base_ms, max(base_ms, max_ms)
        self.ms = base_ms

    async def poll(self, **getmany) -> dict[TopicPartition, list]:
        """``consumer.getmany(**getmany)``, then :meth:`after` (for readers outside the runner)."""
        polled = await self.consumer.getmany(**getmany)
        await self.after(polled)
        return polled

    async def after(self, polled: Mapping[TopicPartition, list]) -> None:
        """After every poll. Records at the setting (the usual case) cost one comparison."""
        if polled and self.ms == self.base_ms:
            return
        if not await behind(self.consumer):
            self._set(self.base_ms)
        elif not polled:
            self._set(min(self.max_ms, max(1, self.ms) * 2))

    def _set(self, ms: int) -> None:
        if ms == self.ms:
            return
        if self.ms < 4 * self.base_ms <= ms:  # widened well past the setting: the broker cannot keep up
            log.debug("%s: fetches come back empty while the broker holds more; waiting up to %d ms for "
                        "each (setting: %d ms) until caught up", self.service, ms, self.base_ms)
        self.ms = ms
        # aiokafka's fetcher reads this for every fetch request it builds; there is no public setter
        self.consumer._fetcher._fetch_max_wait_ms = ms
        metrics.FETCH_WAIT_MS.labels(self.service).set(ms)


class StallWatch:
    """Follows which held partitions brought records; logs and counts those that stall."""

    def __init__(self, service: str, consumer: AIOKafkaConsumer, after_s: float):
        self.service, self.consumer, self.after_s = service, consumer, after_s
        self._last: dict[TopicPartition, tuple[float, int]] = {}
        """Per partition held: when it last brought a record (or was first seen held), and polls since."""
        self._checked = time.monotonic()
        self._reported: set[TopicPartition] = set()

    def polled(self, batches: Mapping[TopicPartition, list]) -> None:
        """After every poll: the partitions that brought records start again from zero."""
        now = time.monotonic()
        self._last = {tp: (now, 0) if batches.get(tp) else (at, polls + 1)
                      for tp in self.consumer.assignment() for at, polls in [self._last.get(tp, (now, 0))]}  # fmt: skip
        self._reported.intersection_update(tp for tp, (at, _) in self._last.items() if at < now)

    async def check(self) -> list[TopicPartition]:
        """At most every ``after_s / 2``: the partitions newly stalled (each reported once per stall)."""
        now = time.monotonic()
        if self.after_s <= 0 or now - self._checked < self.after_s / 2:
            return []
        self._checked = now
        quiet = [tp for tp, (at, polls) in self._last.items()
                 if now - at >= self.after_s and polls >= MIN_POLLS and tp not in self._reported]  # fmt: skip
        if not quiet:
            return []
        try:
            ends = await self.consumer.end_offsets(quiet)
            positions = {tp: await self.consumer.position(tp) for tp in quiet}
        except (IllegalStateError, KafkaError) as exc:  # revoked meanwhile, or the broker is away: next time
            log.debug("%s: stall check skipped: %r", self.service, exc)
            return []
        stalled = [tp for tp in quiet if ends[tp] > positions[tp]]
        for tp in stalled:
            self._reported.add(tp)
            metrics.PARTITION_STALLS.labels(self.service, tp.topic, str(tp.partition)).inc()
            log.warning("%s: %s[%d] brought no record for %.0fs over %d polls while the broker holds %d past "
                        "position %d", self.service, tp.topic, tp.partition, now - self._last[tp][0],
                        self._last[tp][1], ends[tp] - positions[tp], positions[tp])
        return stalled
