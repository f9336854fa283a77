"""``fraudstream evaluate``: the replay's work in one process, without a broker.

The same events in the same order as :mod:`fraudstream.replay.run`, through the same code the
services run: ingest's validation and dedup by tx_id, the feature definitions (the
reference implementation, which the store equals bit for bit: ``tests/integration/
test_feature_store.py``), the learner's ``Trainer`` (label join, genuine sampling,
prequential metrics) and a new model version every ``publish_every_labels`` learned labels
(the learner's count rule; its wall-clock rule has no meaning here), scored as scoring does.
It runs about ten times faster than the replay, for comparing models and feature sets.

Where it can differ from the replay: there, scoring switches to a new version a few
milliseconds after the learner publishes it, so the transactions in flight at that moment
are scored by the previous version. The test that compares the two bounds the difference.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Callable

from shared.settings import Settings
from services.features.reference import ReferenceFeatures
from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction
from services.learner.trainer import Trainer
from services.model.fraud_model import FraudModel
from fraudstream.replay.source import Source

UNTRAINED = "untrained"


@dataclass
class OfflineOutcome:
    scores: dict[str, tuple[float, str]] = field(default_factory=dict)
    features: dict[str, dict[str, float]] = field(default_factory=dict)
    """tx_id → the vector it was scored with (kept only when asked)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Reason (up to the colon) → events refused, as ingest and the learner would."""
    versions: int = 0


def evaluate(settings: Settings, source: Source, model: FraudModel | None = None, keep_features: bool = False,
             on_progress: Callable[[int], None] | None = None) -> OfflineOutcome:
    """Score every transaction of ``source`` as the pipeline would; ``model`` is the starting
    point (default: a fresh one, like a fresh learner)."""
    limits = Limits.from_settings(settings)
    now = datetime.now(UTC)
    features = ReferenceFeatures()
    trainer = Trainer(model or FraudModel(genuine_rate=settings.genuine_sample_rate), settings.genuine_sample_rate,
                      settings.alert_threshold, settings.retrain_window_labels)
    serving, version = copy.deepcopy(trainer.model), UNTRAINED
    out, vectors, seen = OfflineOutcome(), {}, set()
    for n, event in enumerate(source.events):
        try:
            if event.kind == "label":
                label = parse_label(event.value, limits, now)
                stored = vectors.get(label.tx_id)
                if stored is None:
                    out.refused["unknown or expired tx_id"] += 1
                    continue
                features.apply_label(label)
                trainer.learn(label.tx_id, stored[1], label.is_fraud, stored[0])
                if trainer.learned_since_publish >= settings.publish_every_labels:
                    out.versions += 1
                    serving, version = copy.deepcopy(trainer.model), f"v{out.versions}"
                    trainer.learned_since_publish = 0
                continue
            tx = parse_transaction(event.value, limits, now)
        except Rejected as exc:
            out.refused[str(exc).split(":", 1)[0]] += 1
            continue
        if tx.tx_id in seen:
            out.refused["duplicate"] += 1
            continue
        seen.add(tx.tx_id)
        x = features.apply(tx).features
        vectors[tx.tx_id] = (tx.ts, x)
        out.scores[tx.tx_id] = (serving.score(x), version)
        if keep_features:
            out.features[tx.tx_id] = x
        if on_progress and n % 10_000 == 0:
            on_progress(len(out.scores))
    return out

