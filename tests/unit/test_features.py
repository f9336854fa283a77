"""The feature definitions, hand-checked through the plain-Python reference."""

from __future__ import annotations

import dataclasses
import doctest
import math
from datetime import UTC, datetime, timedelta

import pytest

from fraudstream.bench import feature_store as bench
from services.features import definitions, reference, scripts, store
from services.features.definitions import (
    AGE_CAP_S,
    DAY,
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    FEATURES,
    UNKNOWN_TX,
    Feature,
    transaction_features,
    version_of,
)  # fmt: skip
from services.features.reference import ReferenceFeatures
from services.features.store import Watermark
from shared.events import Label, Transaction

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC


def tx(tx_id: str, at: float, card: str = "c1", merchant: str = "m1", amount: float = 10.0,
       country: str = "FR", channel: str = "pos") -> Transaction:
    return Transaction(tx_id=tx_id, ts=T0 + timedelta(seconds=at), card_id=card, merchant_id=merchant,
                       amount=amount, currency="EUR", channel=channel, mcc="5411", country=country)  # fmt: skip


def fraud(tx_id: str, labelled_at: float, card: str = "c1", is_fraud: bool = True) -> Label:
    return Label(tx_id=tx_id, card_id=card, is_fraud=is_fraud, labelled_at=T0 + timedelta(seconds=labelled_at))


def run(*events: Transaction) -> list[dict[str, float]]:
    ref = ReferenceFeatures()
    return [ref.apply(e).features for e in events]


def test_the_feature_set_is_the_one_the_model_expects():
    windows = ["1h", "24h", "7d", "30d"]
    assert set(FEATURE_NAMES) == {
        *(f"card_{stem}_{w}" for stem in ("tx_count", "amount_sum", "amount_mean") for w in windows),
        "card_amount_ratio_30d", "card_amount_zscore_30d", "card_seconds_since_prev",
        "card_distinct_merchants_24h", "card_merchant_is_new", "card_country_changed", "card_channel_changed",
        "merchant_tx_count_24h", "merchant_tx_count_7d", "merchant_fraud_rate_7d", "merchant_fraud_rate_30d",
        "merchant_fraud_share_1d", "merchant_fraud_share_7d", "merchant_fraud_share_30d",
        "merchant_labels_7d", "merchant_labels_30d", "amount", "log_amount", "hour_of_day", "is_weekend", "is_night",
    }  # fmt: skip


def test_any_change_to_the_table_changes_the_version():
    assert FEATURE_SET_VERSION == version_of(FEATURES)
    wider = FEATURES + (Feature("card_tx_count_90d", "card", "count", 90 * DAY),)
    other_window = tuple(dataclasses.replace(f, window_s=f.window_s * 2) if f.name == "card_tx_count_1h" else f
                         for f in FEATURES)  # fmt: skip
    assert len({FEATURE_SET_VERSION, version_of(wider), version_of(other_window)}) == 3


@pytest.mark.parametrize("bad, error", [
    (Feature("card_tx_count_1h", "card", "count", 60), "unique"),
    (Feature("card_p99_7d", "card", "p99", 7 * DAY), "no card aggregation 'p99'"),
    (Feature("merchant_tx_count_90m", "merchant", "count", 5400), "whole hours"),
])  # fmt: skip
def test_a_bad_table_is_refused_at_import(bad, error):
    with pytest.raises(ValueError, match=error):
        definitions._check(FEATURES + (bad,))


def test_the_first_transaction_of_a_card_has_the_documented_defaults():
    (first,) = run(tx("t1", 0, amount=25.0))
    history = {k: v for k, v in first.items() if k.startswith(("card_", "merchant_"))}
    assert history == dict.fromkeys(history, 0.0) | {
        "card_amount_ratio_30d": 1.0, "card_seconds_since_prev": AGE_CAP_S, "card_merchant_is_new": 1.0,
    }  # fmt: skip


def test_card_windows_are_half_open_and_exclude_the_same_instant():
    a, b, c, d = run(tx("a", 0), tx("b", 3600, amount=30.0), tx("c", 3600), tx("d", 3600.5))
    assert (b["card_tx_count_1h"], b["card_tx_count_24h"], b["card_amount_sum_24h"]) == (0, 1, 10.0)
    assert b["card_seconds_since_prev"] == 3600
    assert c["card_tx_count_24h"] == 1, "b has the same ts as c: not strictly earlier"
    assert (d["card_tx_count_1h"], d["card_amount_sum_1h"], d["card_amount_mean_1h"]) == (2, 40.0, 20.0)
    assert d["card_seconds_since_prev"] == 0.5


def test_amount_statistics_over_the_30_day_history():
    *_, two, three, fourth = run(tx("a", 0, amount=10.0), tx("b", 60, amount=20.0), tx("c", 120, amount=30.0),
                                 tx("d", 180, amount=40.0))  # fmt: skip
    assert two["card_amount_zscore_30d"] == 0.0, "one earlier amount has no spread"
    assert (three["card_amount_mean_30d"], three["card_amount_ratio_30d"]) == (15.0, 2.0)
    assert fourth["card_amount_zscore_30d"] == 2.0  # (40 - 20) / sample std 10
    *_, same = run(*(tx(f"s{i}", i, amount=0.1) for i in range(4)), tx("s9", 9, amount=5.0))
    assert same["card_amount_zscore_30d"] == 0.0, "equal amounts: std is rounding dust, not spread"


def test_changes_against_the_previous_transaction():
    a, b, c, old = run(tx("a", 0), tx("b", 60, merchant="m2", country="DE", channel="ecom"), tx("c", 120),
                       tx("x", 120 + 30 * DAY, merchant="m3", country="ES", channel="atm"))  # fmt: skip
    assert (a["card_country_changed"], a["card_channel_changed"]) == (0, 0)
    assert (b["card_country_changed"], b["card_channel_changed"], b["card_merchant_is_new"]) == (1, 1, 1)
    assert (c["card_country_changed"], c["card_merchant_is_new"], c["card_distinct_merchants_24h"]) == (1, 0, 2)
    assert (old["card_country_changed"], old["card_seconds_since_prev"]) == (0, AGE_CAP_S), "30 days is no history"


def test_a_late_transaction_lands_in_its_own_windows():
    a, b, late, later = run(tx("a", 1000), tx("b", 3000, merchant="m2"), tx("late", 2000, merchant="m2"),
                            tx("later", 2500, merchant="m2"))  # fmt: skip
    assert (late["card_tx_count_1h"], late["card_seconds_since_prev"]) == (1, 1000)
    assert late["card_merchant_is_new"] == 1, "m2 was first used at 3000, after the late one"
    assert (later["card_tx_count_1h"], later["card_seconds_since_prev"], later["card_merchant_is_new"]) == (2, 500, 0)


def test_merchant_windows_count_whole_hours_before_the_transaction():
    ref = ReferenceFeatures()
    results = [ref.apply(tx(f"t{at}", at, card=f"c{at}", merchant="m9")) for at in (10, 3500, 3700, 3800, 7200)]
    assert [r.features["merchant_tx_count_24h"] for r in results] == [0, 0, 2, 2, 4]
    assert [r.freshness_s["merchant"] for r in results] == [AGE_CAP_S, AGE_CAP_S, 200, 300, 3400]
    next_day = ref.apply(tx("n", DAY + 3600 + 1, card="c", merchant="m9")).features
    assert (next_day["merchant_tx_count_24h"], next_day["merchant_tx_count_7d"]) == (3, 5), "hours [1, 25)"


def test_a_fraud_label_counts_only_once_known_and_within_the_window():
    ref = ReferenceFeatures()
    ref.apply(tx("a", 0, card="c1"))
    assert ref.apply_label(fraud("a", 7200)) is None
    assert ref.apply_label(fraud("a", 9000)) is None, "a later copy: the earliest labelled_at stays"
    assert ref.apply_label(fraud("nope", 60)) == UNKNOWN_TX
    assert ref.apply_label(fraud("a", 60, card="c2")) == UNKNOWN_TX, "the label names another card"
    before = ref.apply(tx("b", 3600, card="c2")).features
    known = ref.apply(tx("c", 7200, card="c3")).features
    week_on = ref.apply(tx("d", 7 * DAY + 7201, card="c4")).features
    assert before["merchant_fraud_rate_7d"] == 0.0, "labelled at 7200, after b's ts"
    assert known["merchant_fraud_rate_7d"] == 0.5, "labelled_at == ts counts; 1 fraud / 2 earlier tx"
    assert (week_on["merchant_fraud_rate_7d"], week_on["merchant_fraud_rate_30d"]) == (0.0, 1 / 3)


def test_a_genuine_label_counts_only_in_the_labels():
    ref = ReferenceFeatures()
    ref.apply(tx("a", 0))
    assert ref.apply_label(fraud("a", 60, is_fraud=False)) is None
    after = ref.apply(tx("b", 3600, card="c2")).features
    assert (after["merchant_fraud_rate_7d"], after["merchant_fraud_share_7d"], after["merchant_labels_7d"]) == (0, 0, 1)


def _shares(features: dict[str, float]) -> tuple[float, ...]:
    return tuple(features[f"merchant_{name}"] for name in (
        "fraud_share_1d", "fraud_share_7d", "fraud_share_30d", "labels_7d", "labels_30d"))  # fmt: skip


def test_label_shares_divide_frauds_by_the_labels_known_in_the_same_hours():
    ref = ReferenceFeatures()
    for i, at in enumerate((0, 10, 20, 30)):
        ref.apply(tx(f"t{i}", at, card=f"c{i}"))
    hour = 3600
    assert ref.apply_label(fraud("t0", 2 * DAY, card="c0")) is None
    assert ref.apply_label(fraud("t1", 20 * DAY, card="c1", is_fraud=False)) is None
    assert ref.apply_label(fraud("t2", 25 * DAY, card="c2")) is None
    assert ref.apply_label(fraud("t2", 26 * DAY, card="c2")) is None, "a later copy: the earliest stays"
    assert ref.apply_label(fraud("t3", 25 * DAY + hour, card="c3", is_fraud=False)) is None
    assert ref.apply_label(fraud("t3", 25 * DAY + 2 * hour, card="c3")) is None, "a fraud from its own label"
    at = {name: ref.apply(tx(f"x{name}", t, card=f"x{name}")).features for name, t in (
        ("same_hour", 25 * DAY + 1800), ("next_hour", 25 * DAY + hour), ("between", 25 * DAY + 2.5 * hour),
        ("fraud", 25 * DAY + 3 * hour), ("month", 32 * DAY + hour), ("gone", 60 * DAY))}  # fmt: skip
    assert _shares(at["same_hour"]) == (0.0, 0.0, 1 / 2, 1, 2), "t2 labelled this hour: counts from the next"
    assert _shares(at["next_hour"]) == (1.0, 1 / 2, 2 / 3, 2, 3)
    assert _shares(at["between"]) == (1 / 2, 1 / 3, 2 / 4, 3, 4), "t3 labelled, its fraud label this hour"
    assert _shares(at["fraud"]) == (1.0, 2 / 3, 3 / 4, 3, 4)
    assert _shares(at["month"]) == (0.0, 1.0, 2 / 3, 1, 3), "t0 and t2 left the 30 d and 7 d with their hours"
    assert _shares(at["gone"]) == (0.0, 0.0, 0.0, 0, 0), "no labels: a share of 0, not a division by 0"
    assert at["fraud"]["merchant_fraud_rate_30d"] == 3 / 7, "the rate: frauds in (ts - 30 d, ts] over the traffic"


@pytest.mark.parametrize("at, hour, weekend, night", [
    (5 * DAY + 23 * 3600, 23, 1, 0),   # Saturday 23:00
    (5 * 3600 + 3599, 5, 0, 1),        # Monday 05:59:59
    (6 * 3600, 6, 0, 0),               # Monday 06:00
])  # fmt: skip
def test_transaction_features_use_the_utc_calendar(at, hour, weekend, night):
    f = transaction_features(tx("t", at, amount=math.e - 1))
    assert (f["hour_of_day"], f["is_weekend"], f["is_night"], f["log_amount"]) == (hour, weekend, night, 1.0)


def test_the_watermark_refuses_what_is_too_late():
    mark = Watermark(max_lateness_s=3600)
    assert not mark.is_too_late(T0)
    mark.observe(T0 + timedelta(hours=2))
    mark.observe(T0)
    assert not mark.is_too_late(T0 + timedelta(hours=1))
    assert mark.is_too_late(T0 + timedelta(minutes=59))
    assert mark.reason(T0) == "too late: 7200s behind the card's newest event, limit 3600s"


def test_a_fixed_seed_stream_keeps_every_invariant():
    ref, results = ReferenceFeatures(), []
    for event in bench.synthetic_stream(seed=5, n=1500):
        if isinstance(event, Transaction):
            results.append(ref.apply(event).features)
        else:
            ref.apply_label(event)
    for f in results:
        assert all(math.isfinite(v) for v in f.values())
        counts = [f[f"card_tx_count_{w}"] for w in ("1h", "24h", "7d", "30d")]
        assert counts == sorted(counts)
        assert f["card_distinct_merchants_24h"] <= f["card_tx_count_24h"]
        assert f["merchant_tx_count_24h"] <= f["merchant_tx_count_7d"]
        if f["card_tx_count_7d"]:
            assert f["card_amount_mean_7d"] == pytest.approx(f["card_amount_sum_7d"] / f["card_tx_count_7d"])
    # the stream reaches every corner: pinned so a generator change is noticed
    assert (
        sum(f["card_tx_count_1h"] > 0 for f in results),
        sum(f["card_amount_zscore_30d"] != 0 for f in results),
        sum(f["merchant_fraud_rate_30d"] > 0 for f in results),
        sum(f["card_seconds_since_prev"] == 3600 for f in results),
    ) == (351, 877, 331, 9)


@pytest.mark.parametrize("module", [definitions, reference, scripts, store])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_a_zero_amount_history_gives_a_finite_ratio():
    """Card testing: zero-amount checks, then a real amount. The mean is floored at one cent."""
    features = reference.ReferenceFeatures()
    base = dict(card_id="tester", merchant_id="m", currency="EUR", channel="ecom", mcc="5999", country="FR")
    for i in range(3):
        features.apply(Transaction(tx_id=f"z{i}", ts=T0 + timedelta(minutes=i), amount=0.0, **base))
    first_zero = features.apply(Transaction(tx_id="z3", ts=T0 + timedelta(minutes=3), amount=0.0, **base))
    real = features.apply(Transaction(tx_id="buy", ts=T0 + timedelta(minutes=4), amount=250.0, **base))
    assert first_zero.features["card_amount_ratio_30d"] == 0.0
    assert real.features["card_amount_ratio_30d"] == 25_000.0
    assert real.features["card_amount_zscore_30d"] == 0.0  # no spread among the zeros
