"""A retrain request with ``since`` waits in the learner until enough labels of transactions
from then on are in, survives a restart of the learner while it waits, and is then answered by
a challenger trained on those labels only — on the real broker and Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiokafka.structs import TopicPartition

from fraudstream.simulator.publish import anchored
from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features import service as features
from services.learner import service as learner
from shared.codec import decode, encode
from shared.events import Label, ModelVersionPublished, Transaction
from shared.kafka import make_consumer
from shared.topics import LABELS, MODEL_RETRAIN, MODEL_VERSIONS, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

SINCE_AT = 600
"""The request's ``since`` is the event time of this transaction."""


def versions(c: Collector) -> list[ModelVersionPublished]:
    return [decode(r.value, ModelVersionPublished) for r in c.of(MODEL_VERSIONS)]


def verdicts(c: Collector) -> list[ModelVersionPublished]:
    return [v for v in versions(c) if v.reason in ("retrain", "rejected")]


async def committed(settings, topic: str) -> int | None:
    """The learner group's committed offset on ``topic`` (one partition: model.retrain)."""
    consumer = make_consumer(settings, group=settings.group(learner.SERVICE))  # not subscribed: joins nothing
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(settings.topic(topic), 0))
    finally:
        await consumer.stop()


async def test_request_with_since_waits_for_labels_since_then_and_survives_a_restart(settings, redis_client,
                                                                                      start_service):
    s = settings.model_copy(update={
        "genuine_sample_rate": 1.0, "publish_every_labels": 100, "publish_every_s": 1e9,
        "retrain_min_labels_since_drift": 150, "retrain_min_frauds_since_drift": 10, "retrain_epochs_since_drift": 3,
    })
    config = anchored(SimulatorConfig(seed=5, n_cards=300, n_merchants=40, fraud_rate=0.1, genuine_label_share=1.0,
                                      label_delay_mean=timedelta(hours=1), label_delay_sigma=0.0), 100, 12)
    stream = list(simulate(config, 1000))
    txs = [e.event for e in stream if isinstance(e.event, Transaction)]
    labels = {e.event.tx_id: e.event for e in stream if isinstance(e.event, Label)}
    since = txs[SINCE_AT].ts
    queue_key = f"{s.redis_prefix}:learner:retrain-queue"

    async def label(batch: list[Transaction]) -> None:
        await produce(s, LABELS, [(t.card_id.encode(), encode(labels[t.tx_id])) for t in batch if t.tx_id in labels])

    start_service(features.run, s)
    stop_first = asyncio.Event()
    first = asyncio.create_task(learner.run(s, stop_first))
    async with Collector(s, MODEL_VERSIONS, TRANSACTIONS_ENRICHED) as seen:
        await produce(s, TRANSACTIONS_VALID, [(t.card_id.encode(), encode(t)) for t in txs])
        await seen.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) >= len(txs))  # features stored for the join
        request = await learner.request_retrain(s, "test: the world changed", "monitor", since=since)
        for _ in range(100):  # queued (nothing learned since ``since`` yet), and kept in Redis
            if await redis_client.hexists(queue_key, request.request_id):
                break
            await asyncio.sleep(0.1)
        assert await redis_client.hexists(queue_key, request.request_id)

        # 100 labels since ``since`` (of 150 needed): periodic snapshots, no verdict
        await label(txs[:SINCE_AT + 100])
        await seen.until(lambda c: any(v.training_window.labels_seen >= SINCE_AT + 100 for v in versions(c)))
        await seen.settle(1.0)
        assert verdicts(seen) == []
        stop_first.set()
        await asyncio.wait_for(first, timeout=30)
        # the snapshots committed the offsets past the request: only Redis still holds it
        assert await committed(s, MODEL_RETRAIN) == 1
        assert await redis_client.hexists(queue_key, request.request_id)

        start_service(learner.run, s)  # a new learner: resumes from the last snapshot and the queue
        await label(txs[SINCE_AT + 100:])
        await seen.until(lambda c: verdicts(c), timeout_s=30)
        await seen.settle(1.0)

    (verdict,) = verdicts(seen)
    assert verdict.training_window.start >= since  # learned only labels of transactions since then
    assert verdict.metrics["labels"] == verdict.champion_metrics["labels"]
    for _ in range(50):  # answered: dropped from the queue once the verdict is sent (at the next batch)
        if not await redis_client.hexists(queue_key, request.request_id):
            break
        await asyncio.sleep(0.1)
    assert not await redis_client.hexists(queue_key, request.request_id)
