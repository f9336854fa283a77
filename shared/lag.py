"""Consumer lag: how many records each consumer group has yet to read, per partition.

Two views of the same number. The runner keeps the ``fraudstream_consumer_lag`` gauge
current from its own consumer (highwater from the latest fetch minus position), so
Prometheus sees every replica's partitions. :func:`group_lag` asks the broker for any
group's committed offsets (``fraudstream lag``), for when a service is down or stuck.

End offsets are read from a fetch's highwater mark, not from ListOffsets: Tansu 0.6 answers
ListOffsets(latest) with the base offset of a partition's last batch + 1, not its end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from shared import metrics
from shared.kafka import make_admin, make_consumer
from shared.settings import Settings
from shared.topics import TOPICS

_reported: dict[tuple[str, int], tuple[float, set[TopicPartition]]] = {}
"""Per group and consumer: when it last refreshed the gauge, and the partitions it then held."""


async def report(group: str, consumer: AIOKafkaConsumer, every_s: float) -> None:
    """Refresh this consumer's lag gauge at most every ``every_s``; drop partitions it lost."""
    last, before = _reported.get((group, id(consumer)), (0.0, set()))
    now = time.monotonic()
    if now - last < every_s:
        return
    held = set(consumer.assignment())
    for tp in held:
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue  # nothing fetched from it yet
        try:
            position = await consumer.position(tp)
        except IllegalStateError:
            continue  # revoked by a rebalance since assignment() was read
        metrics.CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, highwater - position))
    _drop(group, before - held)
    _reported[group, id(consumer)] = (now, held)


def forget(group: str) -> None:
    """A stopped consumer's partitions are someone else's now: stop exporting its lag."""
    for key in [k for k in _reported if k[0] == group]:
        _drop(group, _reported.pop(key)[1])


def _drop(group: str, partitions: set[TopicPartition]) -> None:
    for tp in partitions:
        try:
            metrics.CONSUMER_LAG.remove(group, tp.topic, str(tp.partition))
        except KeyError:
            pass  # never reported (no fetch before it was revoked)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


async def group_lag(settings: Settings, timeout_s: float = 10.0) -> list[PartitionLag]:
    """Lag of every fraudstream consumer group on the broker, on each partition it has committed.

    A group's topics are found from its commits (a service's inputs change with its code);
    a group that has not committed yet has no rows.
    """
    admin = make_admin(settings)
    await admin.start()
    try:
        groups = sorted(g for g, *_ in await admin.list_consumer_groups() if g.startswith(settings.group("")))
        ours = sorted(set(await admin.list_topics()) & {settings.topic(t) for t in TOPICS})
        described = await admin.describe_topics(ours)
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        committed = {}
        for g in groups:
            # Tansu cannot answer OffsetFetch for "all partitions": name them.
            offsets = await admin.list_consumer_group_offsets(g, partitions=tps)
            committed[g] = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()
    ends = await end_offsets(settings, {tp for held in committed.values() for tp in held}, timeout_s)
    return [PartitionLag(g, tp.topic, tp.partition, offset, ends[tp])
            for g in groups for tp, offset in sorted(committed[g].items())]


async def end_offsets(settings: Settings, tps: set[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
    """Each partition's highwater mark, from one small fetch near its end."""
    if not tps:
        return {}
    consumer = make_consumer(settings, group=None, max_partition_fetch_bytes=64 * 1024)
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for tp, latest in (await consumer.end_offsets(list(tps))).items():
            consumer.seek(tp, max(0, latest - 1))  # at or before the end, whichever broker answers
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no highwater mark from the broker within {timeout_s}s")
            await consumer.getmany(timeout_ms=100)
        return {tp: consumer.highwater(tp) for tp in tps}
    finally:
        await consumer.stop()
