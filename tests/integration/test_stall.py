"""A consumer behind its partitions keeps getting records (``shared/stall.py``).

Tansu answers a fetch with only what it can gather within the request's ``max_wait``, at a
cost that grows with the record batches to return: behind many small batches, every fetch
at a short wait comes back empty and the service stops for good (the soak's ingest, twice).
Here ingest runs behind 12,000 single-record batches at a 1 ms fetch wait: with the wait
widened it reads them all; with it fixed it reads (next to) none. And a partition that
stops for any other reason (injected with aiokafka's ``pause``) is logged and counted once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from services.ingest import service as ingest
from shared.boundary import Boundary
from shared.kafka import make_producer
from shared.runner import Clients, run_batches
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector

pytestmark = pytest.mark.integration

BACKLOG = 12_000


def raw_txs(start: int, n: int) -> list[tuple[bytes, bytes]]:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [(f"card-{i % 31}".encode(), orjson.dumps(dict(
        tx_id=f"tx-{i}", ts=ts, card_id=f"card-{i % 31}", merchant_id="m-1", amount=12.5, currency="eur",
        channel="pos", mcc="5411", country="fr"))) for i in range(start, start + n)]


async def produce_one_by_one(settings, items: list[tuple[bytes, bytes]]) -> None:
    """Each record its own batch, as a paced producer's records are: what makes Tansu slow."""
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        for k, v in items:
            await (await producer.send(settings.topic(TRANSACTIONS_RAW), value=v, key=k, partition=0))
    finally:
        await producer.stop()


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def run_ingest(settings, until, *, widen: bool) -> Collector:
    """Ingest's real wiring, its loop with or without the widening fetch wait."""
    spec, stop = ingest.SPEC, asyncio.Event()
    async with Collector(settings, TRANSACTIONS_VALID) as seen, Clients(settings, spec.name, spec.inputs) as clients:
        async with spec.build(clients, settings, stop) as handler:
            boundary = Boundary(spec.name, settings, spec.inputs, raw=spec.raw, views=spec.views)
            loop = asyncio.create_task(run_batches(
                spec.name, clients.consumer, clients.sender, handler, boundary, settings, stop,
                stalls=clients.stalls, fetch_wait=clients.fetch_wait if widen else None))
            try:
                await until(seen, clients)
            finally:
                stop.set()
                await loop
    return seen


@pytest.mark.parametrize("widen", [True, False])
async def test_a_consumer_behind_many_small_batches_widens_its_fetch_wait_and_reads_them_all(settings, widen):
    own = settings.model_copy(update={"fetch_max_wait_ms": 1, "stall_after_s": 0})
    await produce_one_by_one(own, raw_txs(0, BACKLOG))

    async def until(seen: Collector, _clients) -> None:
        if widen:
            await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) == BACKLOG, 60)
        else:
            await seen.settle(5.0)

    seen = await run_ingest(own, until, widen=widen)
    valid = [orjson.loads(r.value)["tx_id"] for r in seen.of(TRANSACTIONS_VALID)]
    assert len(valid) == len(set(valid))
    if widen:
        assert len(valid) == BACKLOG
        assert sample("fraudstream_fetch_wait_ms", {"service": "ingest"}) == 1.0  # narrowed again, caught up
    else:  # the soak's ingest: the broker holds them all, the consumer gets nothing
        assert len(valid) < BACKLOG // 10, len(valid)


async def test_a_partition_that_stops_for_another_reason_is_reported_once(settings):
    own = settings.model_copy(update={"stall_after_s": 1.0})
    labels = [{"service": "ingest", "topic": own.topic(TRANSACTIONS_RAW), "partition": str(p)} for p in (0, 1)]
    before = [sample("fraudstream_partition_stalls_total", lb) for lb in labels]
    producer = make_producer(own)
    await producer.start()

    async def until(seen: Collector, clients: Clients) -> None:
        for k, v in raw_txs(0, 100):
            await producer.send(own.topic(TRANSACTIONS_RAW), value=v, key=k, partition=int(k[-1:]) % 2)
        await producer.flush()
        await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) == 100)
        clients.consumer.pause(TopicPartition(own.topic(TRANSACTIONS_RAW), 0))  # a stuck fetch state
        for k, v in raw_txs(100, 100):
            await producer.send(own.topic(TRANSACTIONS_RAW), value=v, key=k, partition=int(k[-1:]) % 2)
        await producer.flush()
        await seen.until(lambda c: sample("fraudstream_partition_stalls_total", labels[0]) > before[0], 30)
        await seen.settle(2.0)  # two more checks: still stalled, not reported again

    try:
        seen = await run_ingest(own, until, widen=True)
    finally:
        await producer.stop()
    assert [sample("fraudstream_partition_stalls_total", lb) - b for lb, b in zip(labels, before)] == [1, 0]
    assert 100 < len(seen.of(TRANSACTIONS_VALID)) < 200  # partition 1's arrived, partition 0's did not
