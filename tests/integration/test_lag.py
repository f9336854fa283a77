"""Consumer lag, both views: the runner's gauge falls to zero as a backlog drains, and the
broker-side ``group_lag`` (``fraudstream lag``) sees a stopped group's backlog and its drain."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from prometheus_client import REGISTRY

from fraudstream.lag import table
from services.ingest import service as ingest
from shared.lag import group_lag
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def raw_txs(start: int, n: int) -> list[tuple[bytes, bytes]]:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [(f"card-{i % 31}".encode(), orjson.dumps(dict(
        tx_id=f"tx-{i}", ts=ts, card_id=f"card-{i % 31}", merchant_id="m-1", amount=12.5, currency="eur",
        channel="pos", mcc="5411", country="fr"))) for i in range(start, start + n)]


def gauge(settings, partitions: int) -> int | None:
    """The summed lag gauge of ingest on transactions.raw, once every partition is reported."""
    values = [REGISTRY.get_sample_value("fraudstream_consumer_lag", {
        "group": settings.group(ingest.SERVICE), "topic": settings.topic(TRANSACTIONS_RAW), "partition": str(p)})
        for p in range(partitions)]
    return None if None in values else int(sum(values))


async def _ingest_lag(settings) -> int:
    rows = [r for r in await group_lag(settings) if r.group == settings.group(ingest.SERVICE)
            and r.topic == settings.topic(TRANSACTIONS_RAW)]
    return sum(r.lag for r in rows)


async def test_the_lag_gauge_falls_to_zero_as_a_backlog_drains(settings):
    own = settings.model_copy(update={"batch_max": 20, "lag_every_s": 0.0})
    await produce(own, TRANSACTIONS_RAW, raw_txs(0, 5000))
    stop = asyncio.Event()
    service = asyncio.create_task(ingest.run(own, stop))
    samples: list[int] = []
    try:
        def drained(c: Collector) -> bool:  # called once per poll of the outputs: samples the gauge
            if (value := gauge(own, own.partitions)) is not None:
                samples.append(value)
            return len(c.of(TRANSACTIONS_VALID)) >= 5000 and bool(samples) and samples[-1] == 0

        async with Collector(own, TRANSACTIONS_VALID) as seen:
            await seen.until(drained, 60)
    finally:
        stop.set()
        await service
    assert max(samples) > 1000, samples  # reported while most of the backlog was still there
    assert samples == sorted(samples, reverse=True), samples  # and only ever falling
    assert samples[-1] == 0
    assert gauge(own, own.partitions) is None  # a stopped consumer's partitions are no longer its to report


async def test_group_lag_sees_a_stopped_groups_backlog_then_its_drain(settings):
    await produce(settings, TRANSACTIONS_RAW, raw_txs(0, 300))
    async with Collector(settings, TRANSACTIONS_VALID) as seen:
        stop = asyncio.Event()
        service = asyncio.create_task(ingest.run(settings, stop))
        await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) >= 300)
        deadline = time.monotonic() + 30
        while await _ingest_lag(settings) != 0:  # the last commit lands just after the last output
            assert time.monotonic() < deadline
        stop.set()
        await service

    await produce(settings, TRANSACTIONS_RAW, raw_txs(300, 700))
    assert await _ingest_lag(settings) == 700
    printed = table(await group_lag(settings))
    assert f"{settings.group(ingest.SERVICE)}  (total)" in printed and printed.rstrip().endswith("700")

    stop = asyncio.Event()
    service = asyncio.create_task(ingest.run(settings, stop))
    try:
        deadline = time.monotonic() + 30
        seen_lags = [700]
        while seen_lags[-1] != 0:
            assert time.monotonic() < deadline, seen_lags
            seen_lags.append(await _ingest_lag(settings))
        assert seen_lags == sorted(seen_lags, reverse=True)
    finally:
        stop.set()
        await service
