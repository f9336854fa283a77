"""A partition the consumer holds but no longer reads: found, logged, counted, and rejoined.

The one-hour soak (issue 14, ``docs/faults.md``) saw ingest stop reading ``transactions.raw``
after 25 minutes while it went on reading ``labels.raw``, with nothing logged: the group's
commits stood still, a fresh consumer read past them at once. Kafka clients of every
language have reports of the same symptom (a partition assigned, never fetched again, until
the next rebalance), and a service that stalls this way is alive by every other measure.

So the runner watches each partition it holds: one from which ``after_s`` have brought no
record, across at least ``MIN_POLLS`` polls (a batch retried through a Redis outage polls
nothing, and is not a stall), while the broker holds records past the consumer's position,
is stalled. The consumer then leaves the group and joins again, which is what a restart
would do: a new assignment, positions from the committed offsets, fresh fetch state. What
was consumed and not yet committed is consumed again (handlers are idempotent).
``fraudstream_partition_stalls_total`` counts each, and the warning names the partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from shared import metrics

log = logging.getLogger(__name__)

MIN_POLLS = 10
"""Polls without a record from a partition before it can be stalled."""


class StallWatch:
    """Follows which partitions brought records; rejoins the group when one stalls."""

    def __init__(self, service: str, consumer: AIOKafkaConsumer, topics: Sequence[str],
                 listener: ConsumerRebalanceListener | None, after_s: float):
        self.service, self.consumer, self.topics, self.listener = service, consumer, list(topics), listener
        self.after_s = after_s
        self._last: dict[TopicPartition, tuple[float, int]] = {}
        """Per partition held: when it last brought a record (or was first seen held), and polls since."""
        self._checked = time.monotonic()

    def polled(self, batches: Mapping[TopicPartition, list]) -> None:
        """After every poll: the partitions that brought records start again from zero."""
        now = time.monotonic()
        held = self.consumer.assignment()
        self._last = {tp: (now, 0) if batches.get(tp) else (at, polls + 1)
                      for tp in held for at, polls in [self._last.get(tp, (now, 0))]}  # fmt: skip

    async def check(self) -> list[TopicPartition]:
        """At most every ``after_s / 2``: the stalled partitions (rejoining the group if any)."""
        now = time.monotonic()
        if self.after_s <= 0 or now - self._checked < self.after_s / 2:
            return []
        self._checked = now
        quiet = [tp for tp, (at, polls) in self._last.items() if now - at >= self.after_s and polls >= MIN_POLLS]
        if not quiet:
            return []
        try:
            ends = await self.consumer.end_offsets(quiet)
            behind = {tp: (await self.consumer.position(tp), ends[tp]) for tp in quiet}
        except (IllegalStateError, KafkaError) as exc:  # revoked meanwhile, or the broker is away: next time
            log.debug("%s: stall check skipped: %r", self.service, exc)
            return []
        stalled = [tp for tp, (position, end) in behind.items() if end > position]
        for tp in stalled:
            position, end = behind[tp]
            metrics.PARTITION_STALLS.labels(self.service, tp.topic, str(tp.partition)).inc()
            log.warning("%s: %s[%d] brought no record for %.0fs over %d polls while the broker holds "
                        "%d past position %d; leaving the group and joining again", self.service, tp.topic,
                        tp.partition, now - self._last[tp][0], self._last[tp][1], end - position, position)
        if stalled:
            self.rejoin()
        return stalled

    def rejoin(self) -> None:
        """Leave the group and join again: what a restart does, without one."""
        self.consumer.unsubscribe()
        self.consumer.subscribe(self.topics, listener=self.listener)
        self._last.clear()
