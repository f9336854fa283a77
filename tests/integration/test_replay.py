"""Replay on the real broker and Redis: a CSV replayed through the services gives the very
features the live services computed for the same stream, and the in-process ``evaluate``
path agrees with it (features exactly, scores closely).

One partition: merchant windows count whole earlier hours of *every* partition, so with
several partitions a merchant count depends on how far the other partitions have got
(docs/architecture.md, "Lateness follows the entity"); card features never do."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from fraudstream.replay.arms import parse_arm
from fraudstream.replay.commands import replay_settings
from fraudstream.replay.offline import evaluate
from fraudstream.replay.run import MORE, replay
from fraudstream.replay.source import Columns, Stream
from fraudstream.simulator.traffic import SimulatorConfig, simulate, write_csv
from services.features import service as features
from services.features.definitions import FEATURES, LABEL_AGGREGATIONS
from services.ingest import service as ingest
from services.learner import service as learner
from services.model.metrics import average_precision
from services.scoring import service as scoring
from shared.codec import decode, encode
from shared.events import EnrichedTransaction, Label
from shared.kafka import ensure_topics, make_producer
from shared.topics import LABELS_RAW, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW
from tests.kafka_helpers import Collector, delete_prefix

pytestmark = pytest.mark.integration

N = 1500
DELAY_S = 86400.0


def vectors(records) -> dict[str, dict[str, float]]:
    """tx_id → features of its first enrichment."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        e = decode(r.value, EnrichedTransaction)
        out.setdefault(e.transaction.tx_id, e.features)
    return out


async def test_replayed_csv_gets_the_live_features_and_evaluate_agrees(settings, start_service, tmp_path):
    s = settings.model_copy(update=replay_settings(settings, DELAY_S) | {
        "publish_every_labels": 100, "genuine_sample_rate": 1.0, "partitions": 1,
        "topic_prefix": settings.topic_prefix + "p1."})
    await ensure_topics(s)
    config = SimulatorConfig(seed=12, n_cards=300, n_merchants=40, fraud_rate=0.05)
    emissions = [e for e in simulate(config, N) if e.topic == TRANSACTIONS_RAW]
    path = tmp_path / "history.csv"
    assert write_csv(emissions, path) == N

    # Live: the simulator's own events as a producer sends them (labels one day later, in time order).
    live = s.model_copy(update={"topic_prefix": s.topic_prefix + "live.", "redis_prefix": s.redis_prefix + "-live"})
    await ensure_topics(live)
    txs = [e.event for e in emissions]
    stream = [(tx.ts.timestamp(), 0, TRANSACTIONS_RAW, tx) for tx in txs] + [
        (tx.ts.timestamp() + DELAY_S, 1, LABELS_RAW,
         Label(tx_id=tx.tx_id, card_id=tx.card_id, is_fraud=e.fraud_pattern is not None,
               labelled_at=tx.ts + timedelta(seconds=DELAY_S), source="chargeback"))
        for tx, e in zip(txs, emissions)]
    stream.sort(key=lambda item: item[:2])
    try:
        for run in (ingest.run, features.run):
            start_service(run, live)
        async with Collector(live, TRANSACTIONS_ENRICHED) as seen_live:
            # A producer of the merged stream in event-time order; as in life, a chargeback
            # comes only after its transaction went through (here: was enriched).
            producer = make_producer(live)
            await producer.start()
            try:
                for i in range(0, len(stream), 100):
                    chunk = stream[i:i + 100]
                    labelled = {ev.tx_id for _, _, topic, ev in chunk if topic == LABELS_RAW}
                    await seen_live.until(lambda c, want=labelled: want <= vectors(c.of(TRANSACTIONS_ENRICHED)).keys())
                    for _, _, topic, ev in chunk:
                        await producer.send(live.topic(topic), value=encode(ev), key=ev.card_id.encode())
                    await producer.flush()
            finally:
                await producer.stop()
            await seen_live.until(lambda c: len(vectors(c.of(TRANSACTIONS_ENRICHED))) >= N, timeout_s=60)
        live_vectors = vectors(seen_live.of(TRANSACTIONS_ENRICHED))
    finally:
        r = aioredis.Redis.from_url(live.redis_url)
        await delete_prefix(r, live.redis_prefix)
        await r.aclose()

    # Replay: the CSV through ingest, features, scoring and the learner.
    for run in (ingest.run, features.run, scoring.run, learner.run):
        start_service(run, s)
    scored: dict[str, tuple[float, str]] = {}
    truth: dict[str, bool | None] = {}

    def keep(row, score: float, version: str) -> None:
        assert row.tx_id not in scored  # each transaction leaves the replay once
        scored[row.tx_id], truth[row.tx_id] = (score, version), row.label

    async with Collector(s, TRANSACTIONS_ENRICHED) as seen_replay:
        with open(path, newline="", encoding="utf-8") as handle:
            source = Stream(handle, Columns(), DELAY_S, more=MORE)
            outcome = await replay(s, source, max_in_flight=300, chunk=100, stalled_s=30, on_scored=keep)
        await seen_replay.until(lambda c: len(vectors(c.of(TRANSACTIONS_ENRICHED))) >= N, timeout_s=30)
    assert (source.transactions, source.labels, source.refused) == (N, N, {})
    assert len(outcome.scores) == len(scored) == N and not outcome.refused and not outcome.labels_refused
    assert outcome.sent_labels == N
    assert [r.card for r in outcome.scores.rows()] == [e.event.card_id for e in emissions]  # in event-time order
    replay_vectors = vectors(seen_replay.of(TRANSACTIONS_ENRICHED))

    # Offline: the same file in-process, streamed, with the services' own FraudModel.
    with open(path, newline="", encoding="utf-8") as handle:
        offline = evaluate(s, Stream(handle, Columns(), DELAY_S), [parse_arm("champion=linear")], keep_ids=True,
                           keep_features=True)
    assert set(offline.tx_ids) == set(replay_vectors) == set(live_vectors)

    # Every feature but those read from labels is equal: exactly between the two runs of the
    # services, to 1e-9 offline (Lua and Python sum in the same order). A label feature (fraud
    # rate, fraud share, label count) counts the labels applied before the transaction: a
    # label produced just before a transaction of a later event time, on the other topic, can
    # still reach the features service after it, in either run of the services.
    from_labels = {f.name for f in FEATURES if f.entity == "merchant" and f.aggregation in LABEL_AGGREGATIONS}
    label_differs = {"live vs replay": set(), "offline vs replay": set()}
    merchant_rate_seen = 0
    for tx_id, x in replay_vectors.items():
        assert offline.features[tx_id].keys() == x.keys() == live_vectors[tx_id].keys()
        for name, value in x.items():
            if name in from_labels:
                for what, other in (("live vs replay", live_vectors), ("offline vs replay", offline.features)):
                    if not math.isclose(other[tx_id][name], value, abs_tol=1e-9):
                        label_differs[what].add(tx_id)
                continue
            assert live_vectors[tx_id][name] == value, (tx_id, name)
            assert offline.features[tx_id][name] == pytest.approx(value, abs=1e-9), (tx_id, name)
        merchant_rate_seen += x["merchant_fraud_rate_30d"] > 0
    print("\nlabel features differ for " + ", ".join(f"{len(v)} of {N} transactions {k}"
                                                   for k, v in label_differs.items()))
    assert merchant_rate_seen > 100  # the labels reached the features: merchant fraud rates moved
    # Ingest and features read the labels a fetch found before the transactions with them
    # (``take_first``): idle, 0 of 1,500 differ; under 8 busy processes on 2 cores, replay
    # against offline 0 in 12 runs, live against replay 25 in 1 of 12 (a label produced in
    # the same request as a transaction can still be read a moment after it; 7–97 in 4 of
    # 11 runs without take_first). The store is held equal to the reference bit for bit in
    # test_feature_store.py.
    assert len(label_differs["offline vs replay"]) <= 0.01 * N
    assert len(label_differs["live vs replay"]) <= 0.1 * N

    # Scores: the same model code on the same labels, but not the same versions. The learner
    # publishes once a *batch* takes it past ``publish_every_labels`` (offline: at exactly
    # that count; here 8 versions against 15), and scoring switches a few transactions after
    # a publish. So scores agree closely, not exactly (seen: AP 0.116 vs 0.132, 88 % of
    # scores within 0.02; in other runs 0.127 vs 0.132 and 0.154 vs 0.132, 87-90 %).
    replayed = {t: score for t, (score, _) in scored.items()}
    offline_scores = dict(zip(offline.tx_ids, offline.scores["champion"]))
    # How many versions scoring meets depends on how the learner's batches fall (one publish
    # per batch past the count), so on timing: 3 to 8 seen; untrained and two published at least.
    assert len({v for _, v in scored.values()}) >= 3 and offline.versions["champion"] >= 5
    ap_replay = average_precision([(replayed[t], truth[t], 1.0) for t in truth])
    ap_offline = average_precision([(offline_scores[t], truth[t], 1.0) for t in truth])
    close = sum(math.isclose(replayed[t], offline_scores[t], abs_tol=0.02) for t in truth) / N
    print(f"AP replay {ap_replay:.4f}, offline {ap_offline:.4f}; scores within 0.02: {close:.1%}; "
          f"versions: replay {len({v for _, v in scored.values()})}, offline {offline.versions['champion']}")
    assert abs(ap_replay - ap_offline) < 0.1  # 0.00–0.03 when idle; up to 0.09 seen at a load of 10
    assert close > 0.8


async def test_labels_due_inside_a_chunk_wait_for_their_own_transactions(settings, start_service, tmp_path):
    """No label delay: every label sorts right after its transaction, in the same chunk."""
    s = settings.model_copy(update=replay_settings(settings, 0.0))
    config = SimulatorConfig(seed=13, n_cards=100, n_merchants=20, fraud_rate=0.05)
    path = tmp_path / "history.csv"
    write_csv((e for e in simulate(config, 200) if e.topic == TRANSACTIONS_RAW), path)
    for run in (ingest.run, features.run, scoring.run, learner.run):
        start_service(run, s)
    with open(path, newline="", encoding="utf-8") as handle:
        outcome = await replay(s, Stream(handle, Columns(), 0.0, more=MORE), stalled_s=30)
    assert (len(outcome.scores), outcome.sent_tx, outcome.sent_labels) == (200, 200, 200)
    assert not outcome.refused and not outcome.labels_refused
