"""features over the real broker and Redis: the same numbers as the reference, replays
change nothing, and two workers in one group cover every transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraudstream.simulator.publish import anchored
from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features import service as features
from services.features.reference import ReferenceFeatures
from shared.codec import decode, encode
from shared.events import DeadLetter, EnrichedTransaction, Transaction
from shared.kafka import ensure_topics
from shared.topics import DEADLETTER, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def stream(n: int, seed: int = 5) -> list[Transaction]:
    config = anchored(SimulatorConfig(seed=seed, n_cards=150, n_merchants=40, label_genuine=False), 50, n / 50)
    return [e.event for e in simulate(config, n) if isinstance(e.event, Transaction)]


def by_tx(records) -> dict[str, list[EnrichedTransaction]]:
    seen: dict[str, list[EnrichedTransaction]] = {}
    for r in records:
        e = decode(r.value, EnrichedTransaction)
        seen.setdefault(e.transaction.tx_id, []).append(e)
    return seen


async def test_live_features_equal_the_reference_and_a_replay_changes_nothing(settings, start_service):
    one_partition = settings.model_copy(update={"partitions": 1, "topic_prefix": settings.topic_prefix + "p1."})
    await ensure_topics(one_partition)
    txs = stream(600)
    items = [(tx.card_id.encode(), encode(tx)) for tx in txs]
    newest = max(txs, key=lambda tx: tx.ts)
    # lateness follows the card: too late behind its own newest transaction
    too_late = newest.model_copy(
        update={"tx_id": "late-1", "ts": newest.ts - timedelta(seconds=settings.max_lateness_s + 60)})
    # the whole stream, then a transaction beyond the lateness bound, then the stream replayed
    await produce(one_partition, TRANSACTIONS_VALID, items + [(b"k", encode(too_late))] + items)

    start_service(features.run, one_partition)
    async with Collector(one_partition, TRANSACTIONS_ENRICHED, DEADLETTER) as seen:
        await seen.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) >= 2 * len(txs) and c.of(DEADLETTER))
        await seen.settle(0.5)
    enriched = by_tx(seen.of(TRANSACTIONS_ENRICHED))
    [letter] = [decode(r.value, DeadLetter) for r in seen.of(DEADLETTER)]
    assert letter.service == "features" and letter.error.startswith("too late: ")
    assert decode(letter.payload, Transaction).tx_id == "late-1"

    reference = ReferenceFeatures()
    assert len(enriched) == len(txs)
    for tx in txs:
        expected = reference.apply(tx)
        first, replayed = enriched[tx.tx_id]
        assert first.features == replayed.features  # idempotent: the replay reads the stored vector
        assert first.features.keys() == expected.features.keys()
        for name, value in expected.features.items():
            assert first.features[name] == pytest.approx(value, abs=1e-9), (tx.tx_id, name)
        assert first.freshness_s == pytest.approx(expected.freshness_s, abs=1e-9)
        assert first.stages["enriched"] >= first.stages["received"]
    assert any(e[0].features["card_tx_count_24h"] > 0 for e in enriched.values())


async def test_two_workers_split_the_partitions_and_enrich_every_transaction_once(settings, start_service):
    txs = stream(800, seed=9)
    await produce(settings, TRANSACTIONS_VALID, [(tx.card_id.encode(), encode(tx)) for tx in txs])
    start_service(features.run)
    start_service(features.run)
    async with Collector(settings, TRANSACTIONS_ENRICHED) as seen:
        await seen.until(lambda c: len({r.value for r in c.of(TRANSACTIONS_ENRICHED)}) >= len(txs), timeout_s=60)
        await seen.settle(0.5)
    enriched = by_tx(seen.of(TRANSACTIONS_ENRICHED))
    assert sorted(enriched) == sorted(tx.tx_id for tx in txs)
    for tx_id, copies in enriched.items():
        # at-least-once delivery: a rebalance may enrich a transaction twice, always identically
        assert all(c.features == copies[0].features for c in copies), tx_id
