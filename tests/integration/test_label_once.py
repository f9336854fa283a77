"""A label re-published upstream (ingest after a restart) is learned once: a duplicate in the
same run is skipped from memory, one after a learner restart from the snapshot's markers in
Redis. Real broker, Redis, features and learner."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.features import service as features
from services.learner import service as learner
from services.learner.once import LearnedOnce
from shared import metrics
from shared.codec import decode, encode
from shared.events import Label, ModelVersionPublished, TrainingWindow, Transaction, utcnow
from shared.topics import LABELS, MODEL_VERSIONS, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

N = 20


def transaction(i: int) -> Transaction:
    return Transaction(tx_id=f"tx-{i}", ts=utcnow() - timedelta(minutes=10) + timedelta(seconds=i),
                       card_id=f"card-{i % 5}", merchant_id=f"m{i % 3}", amount=10.0 + i, currency="EUR",
                       channel="pos", mcc="5411", country="FR")


def label(i: int) -> tuple[bytes, bytes]:
    return f"card-{i % 5}".encode(), encode(Label(tx_id=f"tx-{i}", card_id=f"card-{i % 5}", is_fraud=i % 4 == 0,
                                                  labelled_at=utcnow()))


def latest(c: Collector) -> ModelVersionPublished:
    return [decode(r.value, ModelVersionPublished) for r in c.of(MODEL_VERSIONS)][-1]


def duplicates() -> float:
    return metrics.LABELS_DUPLICATE.labels(learner.SERVICE)._value.get()


async def test_a_label_published_twice_is_learned_once_within_a_run_and_across_a_restart(settings, start_service):
    s = settings.model_copy(update={"publish_every_labels": 1000, "publish_every_s": 0.5,
                                    "genuine_sample_rate": 1.0})
    start_service(features.run, s)
    async with Collector(s, TRANSACTIONS_ENRICHED) as enriched:  # every vector stored before any label
        await produce(s, TRANSACTIONS_VALID, [(f"card-{i % 5}".encode(), encode(transaction(i))) for i in range(N + 1)])
        await enriched.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) == N + 1)
    skipped_before = duplicates()
    stop = asyncio.Event()
    first = asyncio.create_task(learner.run(s, stop))
    async with Collector(s, MODEL_VERSIONS) as seen:
        # within a run: tx-0 and tx-1 twice, in one batch or the next
        await produce(s, LABELS, [label(i) for i in range(N)] + [label(0), label(1)])
        await seen.until(lambda c: bool(c.of(MODEL_VERSIONS)) and latest(c).training_window.labels_seen >= N,
                         timeout_s=10)
        await seen.until(lambda _: duplicates() - skipped_before >= 2, timeout_s=10)
        await seen.settle(1.0)
        assert latest(seen).training_window.labels_seen == N
        stop.set()
        await asyncio.wait_for(first, timeout=30)

        # across a restart after the snapshot: tx-2 again, then a new label to make a version
        await produce(s, LABELS, [label(2), label(N)])
        start_service(learner.run, s)
        await seen.until(lambda c: latest(c).training_window.labels_seen > N, timeout_s=30)
        await seen.settle(1.0)
    assert latest(seen).training_window.labels_seen == N + 1  # tx-N learned, tx-2 not again
    assert duplicates() - skipped_before == 3


async def test_a_marker_counts_only_for_a_snapshot_in_the_known_history(settings, redis_client):
    # A crash after the markers were written but before the announcement was sent leaves
    # markers naming a snapshot nobody saw; the next run (which may reuse its version name)
    # must learn those labels again.
    known: set = set()
    once = LearnedOnce(settings, redis_client, known)
    labels = [decode(label(i)[1], Label) for i in range(3)]
    for lb in labels[:2]:
        once.learned(lb)
    assert await once.fresh(labels + [labels[2]]) == [False, False, True, False]  # memory; twice in a list
    snapshot = ModelVersionPublished(version="v1", artifact_ref="mem:v1", artifact_sha256="0" * 64,
                                     reason="periodic", status="champion",
                                     training_window=TrainingWindow(labels_seen=2, frauds_seen=1))
    once.sealed(snapshot)
    await once.mark()
    restarted = LearnedOnce(settings, redis_client, known)
    assert await restarted.fresh(labels) == [True, True, True]  # v1 never announced: not trusted
    known.add((snapshot.version, snapshot.published_at))
    assert await restarted.fresh(labels) == [False, False, True]
    assert await redis_client.ttl(f"{settings.redis_prefix}:{{card:card-0}}:learned:tx-0") > 0
