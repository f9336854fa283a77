"""The whole loop on the real broker and Redis: simulated traffic in; a score for every
transaction, alerts, labels that make the learner publish versions, scoring switching to
them, and the model getting measurably better than the untrained one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fraudstream.simulator.publish import publish
from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features import service as features
from services.ingest import service as ingest
from services.learner import service as learner
from services.model.metrics import average_precision
from services.scoring import service as scoring
from shared.codec import decode
from shared.events import Alert, ModelVersionPublished, Score
from shared.topics import ALERTS, MODEL_VERSIONS, SCORES
from tests.kafka_helpers import Collector

pytestmark = pytest.mark.e2e

N = 4000
CONFIG = SimulatorConfig(seed=21, n_cards=400, n_merchants=60, fraud_rate=0.03, label_genuine=True,
                         genuine_label_share=0.3, label_delay_mean=timedelta(days=4), label_delay_sigma=0.3)


async def test_traffic_is_scored_and_the_learned_model_beats_the_untrained_one(settings, start_service):
    # Phase 2's simulated clock restarts behind phase 1's watermark: widen the lateness bound.
    s = settings.model_copy(update={"publish_every_labels": 150, "publish_every_s": 2.0, "genuine_sample_rate": 1.0,
                                    "max_lateness_s": 90 * 86400.0})
    for run in (ingest.run, features.run, scoring.run, learner.run):
        start_service(run, s)
    later = CONFIG.model_copy(update={"seed": 22})
    truth = {e.event.tx_id: e.fraud_pattern is not None
             for config, n in ((CONFIG, N), (later, N // 2)) for e in simulate(config, n)
             if e.topic == "transactions.raw"}

    def learned_enough(c: Collector) -> bool:
        return any(decode(r.value, ModelVersionPublished).training_window.frauds_seen >= 80
                   for r in c.of(MODEL_VERSIONS))

    async with Collector(s, SCORES, ALERTS, MODEL_VERSIONS) as seen:
        # Phase 1: traffic while labels arrive; phase 2: new traffic once a version has learned.
        assert (await publish(s, CONFIG, rate=800, stop=asyncio.Event(), n_transactions=N)).transactions == N
        await seen.until(learned_enough, timeout_s=60)
        await publish(s, later, rate=800, stop=asyncio.Event(), n_transactions=N // 2)
        await seen.until(lambda c: len({decode(r.value, Score).tx_id for r in c.of(SCORES)}) >= len(truth),
                         timeout_s=120)
        await seen.settle(1.0)

    scores = {}
    for r in seen.of(SCORES):
        score = decode(r.value, Score)
        scores.setdefault(score.tx_id, score)  # at-least-once: the first copy is the one acted on
    assert set(scores) == set(truth)  # a score for every transaction, nothing else

    versions = [decode(r.value, ModelVersionPublished) for r in seen.of(MODEL_VERSIONS)]
    assert len(versions) >= 2 and versions[0].parent is None and versions[1].parent == versions[0].version
    assert all(len(v.artifact_sha256) == 64 and v.training_window.labels_seen > 0 for v in versions)
    used = {s.model_version for s in scores.values()}
    assert "untrained" in used and used & {v.version for v in versions}  # scoring switched mid-stream

    alerts = [decode(r.value, Alert) for r in seen.of(ALERTS)]
    above = {t for t, sc in scores.items() if sc.score >= s.alert_threshold}
    assert {a.tx_id for a in alerts} == above
    assert all(a.reasons and a.severity for a in alerts)

    # Prequential: the latest version's average precision on the labels it learned from,
    # against the untrained model's (a constant score: AP = the share of frauds).
    last = versions[-1]
    base_rate = last.training_window.frauds_seen / last.training_window.labels_seen
    assert last.metrics["average_precision"] > base_rate + 0.1
    # Live: the scores a trained version gave later traffic against the untrained scores.
    untrained = [(sc.score, truth[t], 1.0) for t, sc in scores.items() if sc.model_version == "untrained"]
    late = [(sc.score, truth[t], 1.0) for t, sc in scores.items()
            if t.startswith("tx-22-") and sc.model_version != "untrained"]
    ap_untrained, ap_trained = average_precision(untrained), average_precision(late)
    print(f"\naverage precision: untrained {ap_untrained:.3f} on {len(untrained)} scores, trained {ap_trained:.3f} "
          f"on {len(late)}; prequential {last.metrics['average_precision']:.3f} (base rate {base_rate:.3f}) "
          f"after {last.training_window.labels_seen} labels; {len(versions)} versions")
    assert ap_trained > 2 * ap_untrained
