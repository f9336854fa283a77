"""A held partition that stops being fetched is found and the consumer rejoins its group.

The soak saw ingest stop reading one topic with nothing logged (``shared/stall.py``). The
stuck fetch state is injected here with aiokafka's own ``pause``: the partition stays
assigned, the consumer polls on, and without the watch its records are never read.
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
from shared.runner import Clients, run_batches
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def raw_txs(start: int, n: int, partition_keys: int = 31) -> list[tuple[bytes, bytes]]:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [(f"card-{i % partition_keys}".encode(), orjson.dumps(dict(
        tx_id=f"tx-{i}", ts=ts, card_id=f"card-{i % partition_keys}", merchant_id="m-1", amount=12.5,
        currency="eur", channel="pos", mcc="5411", country="fr"))) for i in range(start, start + n)]


def stalls(settings, partition: int) -> float:
    return REGISTRY.get_sample_value("fraudstream_partition_stalls_total", {
        "service": "ingest", "topic": settings.topic(TRANSACTIONS_RAW), "partition": str(partition)}) or 0.0


@pytest.mark.parametrize("after_s", [1.0, 0.0])
async def test_a_partition_that_stops_being_fetched_is_found_and_the_group_rejoined(settings, after_s):
    own = settings.model_copy(update={"stall_after_s": after_s})
    spec, stop = ingest.SPEC, asyncio.Event()
    before = [stalls(own, p) for p in range(own.partitions)]
    await produce(own, TRANSACTIONS_RAW, raw_txs(0, 100))
    async with Collector(own, TRANSACTIONS_VALID) as seen, Clients(own, spec.name, spec.inputs) as clients:
        async with spec.build(clients, own, stop) as handler:
            boundary = Boundary(spec.name, own, spec.inputs, raw=spec.raw, views=spec.views)
            loop = asyncio.create_task(run_batches(spec.name, clients.consumer, clients.sender, handler, boundary,
                                                   own, stop, stalls=clients.stalls))
            try:
                await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) == 100)
                clients.consumer.pause(TopicPartition(own.topic(TRANSACTIONS_RAW), 0))  # the stuck fetch
                await produce(own, TRANSACTIONS_RAW, raw_txs(100, 100))
                if after_s:
                    await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) == 200, 30)
                    assert [stalls(own, p) - b for p, b in enumerate(before)] == [1, 0]
                else:  # the watch off: what the soak saw, partition 0's records never read
                    await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) > 100, 30)
                    await seen.settle(3.0)
                    assert 100 < len(seen.of(TRANSACTIONS_VALID)) < 200
                    assert [stalls(own, p) - b for p, b in enumerate(before)] == [0, 0]
            finally:
                stop.set()
                await loop
    assert sorted(orjson.loads(r.value)["tx_id"] for r in seen.of(TRANSACTIONS_VALID)) == sorted(
        {orjson.loads(r.value)["tx_id"] for r in seen.of(TRANSACTIONS_VALID)})  # each once
