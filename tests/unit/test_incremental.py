"""The incremental features equal the reference implementation on a simulated stream with
delayed labels, repeated timestamps and zero amounts."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from fraudstream.replay.incremental import IncrementalFeatures
from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features.definitions import FEATURE_NAMES
from services.features.reference import ReferenceFeatures
from shared.events import Label
from shared.topics import TRANSACTIONS_RAW


def _stream(n: int, delay: timedelta):
    config = SimulatorConfig(seed=5, n_cards=60, n_merchants=12, fraud_rate=0.05)
    txs = [e.event for e in simulate(config, n) if e.topic == TRANSACTIONS_RAW]
    frauds = {e.event.tx_id for e in simulate(config, n) if e.topic == TRANSACTIONS_RAW and e.fraud_pattern}
    # a repeated instant on one card, ordered by the history member and not by arrival
    txs[41] = txs[41].model_copy(update={"ts": txs[40].ts, "card_id": txs[40].card_id})
    events = [(tx.ts, 0, tx) for tx in txs] + [
        (tx.ts + delay, 1, Label(tx_id=tx.tx_id, card_id=tx.card_id, is_fraud=tx.tx_id in frauds,
                                 labelled_at=tx.ts + delay, source="analyst")) for tx in txs]
    events.sort(key=lambda e: e[:2])
    return [e[2] for e in events]


def test_incremental_features_equal_the_reference():
    reference, fast = ReferenceFeatures(), IncrementalFeatures()
    merchant_of, compared = {}, 0
    for event in _stream(3000, timedelta(days=2)):
        if isinstance(event, Label):
            reference.apply_label(event)
            fast.apply_label(merchant_of[event.tx_id], event.labelled_at.timestamp(), event.is_fraud)
            continue
        merchant_of[event.tx_id] = event.merchant_id
        want = reference.apply(event).features
        got = fast.apply(event.tx_id, event.ts.timestamp(), event.card_id, event.merchant_id, event.amount,
                         event.country, event.channel)
        assert set(got) == set(FEATURE_NAMES)
        for name in FEATURE_NAMES:
            assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), (event.tx_id, name)
        compared += 1
    assert compared == 3000


def test_label_shares_count_labels_known_at_the_merchant():
    fast = IncrementalFeatures()
    day = 86400.0
    fast.apply("t1", 0.0, "c1", "m1", 10.0, "FR", "pos")
    fast.apply("t2", 10.0, "c2", "m1", 0.0, "FR", "ecom")  # a zero amount is a transaction like any other
    fast.apply_label("m1", 7 * day - 3600, True)  # known in the hour before t3's: counted
    fast.apply_label("m1", 7 * day - 3590, False)
    x = fast.apply("t3", 7 * day + 20, "c2", "m1", 5.0, "FR", "ecom")
    assert {k: v for k, v in x.items() if k.startswith(("merchant_fraud_share", "merchant_labels"))} == {
        "merchant_fraud_share_1d": 0.5, "merchant_fraud_share_7d": 0.5, "merchant_fraud_share_30d": 0.5,
        "merchant_labels_7d": 2.0, "merchant_labels_30d": 2.0}
    assert x["card_amount_ratio_30d"] == 500.0  # 5 over a mean of 0, floored at one cent
    assert x["merchant_fraud_rate_7d"] == 0.5  # hour 0 is still in [hour - 168, hour)
    assert math.isclose(x["log_amount"], math.log1p(5.0))
