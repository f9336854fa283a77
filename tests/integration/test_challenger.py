"""A challenger learns beside the champion on the same labels, is shadow-scored, and a
promotion makes the learner continue from it — all as events on the real broker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraudstream.simulator.publish import anchored
from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features import service as features
from services.learner import service as learner
from services.model.operations import challenge, promote
from services.scoring import service as scoring
from shared.codec import decode, encode
from shared.events import Label, ModelVersionPublished, Score, Transaction
from shared.topics import LABELS, MODEL_VERSIONS, SCORES, SCORES_SHADOW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def versions(c: Collector) -> list[ModelVersionPublished]:
    return [decode(r.value, ModelVersionPublished) for r in c.of(MODEL_VERSIONS)]


async def test_challenger_learns_in_shadow_and_is_promoted(settings, start_service):
    s = settings.model_copy(update={"publish_every_labels": 100, "publish_every_s": 1.0, "genuine_sample_rate": 1.0})
    config = anchored(SimulatorConfig(seed=3, n_cards=200, n_merchants=40, fraud_rate=0.05, genuine_label_share=1.0,
                                      label_delay_mean=timedelta(hours=1), label_delay_sigma=0.0), 100, 12)
    stream = list(simulate(config, 1200))
    txs = [e.event for e in stream if isinstance(e.event, Transaction)]
    labels = {e.event.tx_id: e.event for e in stream if isinstance(e.event, Label)}

    async def send(batch: list[Transaction]) -> None:
        await produce(s, TRANSACTIONS_VALID, [(t.card_id.encode(), encode(t)) for t in batch])

    async def label(batch: list[Transaction]) -> None:
        await produce(s, LABELS, [(t.card_id.encode(), encode(labels[t.tx_id])) for t in batch if t.tx_id in labels])

    for run in (features.run, scoring.run, learner.run):
        start_service(run, s)
    async with Collector(s, MODEL_VERSIONS, SCORES, SCORES_SHADOW) as seen:
        await send(txs[:500])
        await seen.until(lambda c: len(c.of(SCORES)) >= 500)
        started = await challenge(s, kind="linear")
        await label(txs[:500])
        # the champion and the challenger both learn the same labels and are both published
        await seen.until(lambda c: any(v.status == "challenger" and v.reason == "periodic" for v in versions(c)))
        snapshot = next(v for v in versions(seen) if v.status == "challenger" and v.reason == "periodic")
        assert snapshot.parent == started.version and snapshot.champion_metrics is not None
        assert snapshot.training_window.labels_seen > 0

        await send(txs[500:900])  # scored by the champion, shadow-scored by the challenger
        await seen.until(lambda c: any(decode(r.value, Score).model_version.startswith("v")
                                       for r in c.of(SCORES_SHADOW)))
        shadow = [decode(r.value, Score) for r in seen.of(SCORES_SHADOW)]
        champion_versions = {v.version for v in versions(seen) if v.status == "champion"}
        assert {sc.model_version for sc in shadow} <= {v.version for v in versions(seen) if v.status == "challenger"}
        assert not {sc.model_version for sc in shadow} & champion_versions

        latest = [v for v in versions(seen) if v.status == "challenger"][-1]
        await promote(s, latest.version)
        await label(txs[500:900])
        # the learner continues from the promoted challenger: its next snapshot descends from it
        await seen.until(lambda c: any(v.status == "champion" and v.parent == latest.version and v.reason == "periodic"
                                       for v in versions(c)))
