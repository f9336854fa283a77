"""The numpy twin learns and scores as the services' linear FraudModel does."""

from __future__ import annotations

import numpy as np
import pytest

from services.features.definitions import FEATURE_NAMES
from services.model.fraud_model import FraudModel
from shared.topics import TRANSACTIONS_RAW
from fraudstream.replay.incremental import IncrementalFeatures
from fraudstream.replay.twin import LinearTwin
from fraudstream.simulator.traffic import SimulatorConfig, simulate


@pytest.mark.parametrize("params", [dict(), dict(lr=0.05, clip_sd=0.0, genuine_rate=0.2), dict(l2=0.0, clip_sd=2.0)])
def test_the_twin_scores_as_fraud_model_after_the_same_labels(params):
    features = IncrementalFeatures()
    model, twin = FraudModel(**params), LinearTwin(FEATURE_NAMES, **params)
    config = SimulatorConfig(seed=9, n_cards=80, n_merchants=15, fraud_rate=0.05)
    xs = []
    for e in simulate(config, 1500):
        if e.topic != TRANSACTIONS_RAW:
            continue
        tx = e.event
        x = features.apply(tx.tx_id, tx.ts.timestamp(), tx.card_id, tx.merchant_id, tx.amount, tx.country,
                           tx.channel)
        xs.append(x)
        model.learn(x, e.fraud_pattern is not None)
        twin.learn(np.array([x[n] for n in FEATURE_NAMES]), e.fraud_pattern is not None)
    X = np.array([[x[n] for n in FEATURE_NAMES] for x in xs[-300:]])
    assert twin.snapshot().score_many(X) == pytest.approx([model.score(x) for x in xs[-300:]], rel=1e-9, abs=1e-12)
