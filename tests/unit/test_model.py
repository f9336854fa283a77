"""The model library: River's contract, learning, reasons, metrics and artifact bytes."""

from __future__ import annotations

import copy
import hashlib
import math
import pickle
import random

import pytest

from services.model.artifacts import ArtifactError, FileArtifactStore, RedisArtifactStore, dump, load, make_store
from services.model.fraud_model import KINDS, FraudModel, sigmoid
from services.model.metrics import Prequential, average_precision, roc_auc
from services.model.reasons import _occlusion_terms, explain, explain_many
from shared.settings import Settings


def separable(n: int, seed: int = 1, fraud_rate: float = 0.1):
    """Fraud shows in the card's velocity only; amount and hour are noise."""
    rng = random.Random(seed)
    for _ in range(n):
        y = rng.random() < fraud_rate
        yield {
            "card_tx_count_1h": max(0.0, rng.gauss(8.0 if y else 1.0, 1.0)),
            "amount": rng.lognormvariate(3.5, 1.0),
            "hour_of_day": float(rng.randrange(24)),
        }, y


def trained(kind: str, n: int = 2000, **params) -> FraudModel:
    model = FraudModel(kind, **params)
    model.learn_many(*zip(*separable(n)))
    return model


@pytest.fixture(scope="module", params=KINDS)
def model(request) -> FraudModel:
    return trained(request.param)


# --- River's contract


def test_scoring_and_explaining_never_change_state(model):
    before = pickle.dumps(model)
    xs = [x for x, _ in separable(50, seed=2)]
    odd = [{}, {"never_seen": 3.0}, {"card_tx_count_1h": math.nan, "amount": math.inf}, {"amount": 1e308}]
    scores = model.score_many(xs + odd) + [model.score(x) for x in xs + odd]
    reasons = [r for x in xs[:5] + odd for r in explain(model, x, 3)]
    assert pickle.dumps(model) == before
    assert all(math.isfinite(r.value) and math.isfinite(r.contribution) for r in reasons)
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("kind", KINDS)
def test_an_untrained_model_scores_the_prior(kind):
    model = FraudModel(kind, prior=0.02, genuine_rate=0.2)
    assert [model.score(x) for x in ({}, {"amount": 50.0}, {"x": math.nan})] == pytest.approx([0.02] * 3, abs=1e-15)
    assert explain(model, {"amount": 50.0}) == []


def test_nan_counts_as_missing_and_infinity_as_the_most_extreme_value(model):
    x = {"card_tx_count_1h": 9.0, "amount": 40.0}
    assert model.score({**x, "hour_of_day": math.nan}) == model.score(x)
    assert model.score({**x, "hour_of_day": -math.inf}) == model.score({**x, "hour_of_day": -1e300})
    assert 0.0 <= model.score({**x, "amount": 1e308, "hour_of_day": -1e308}) <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_learning_skips_values_that_would_poison_the_running_statistics(kind):
    model = trained(kind, n=200)
    before = dict(model.stats.vars)
    model.learn({"card_tx_count_1h": math.nan, "amount": math.inf, "hour_of_day": -1e300}, True)
    assert dict(model.stats.vars) == before and model.labels_seen == 201


def test_score_many_is_score_whatever_else_is_in_the_batch(model):
    xs = [x for x, _ in separable(200, seed=6)]
    xs += [{}, {"amount": 5.0, "extra": 1.0}, {"card_tx_count_1h": math.nan, "amount": math.inf}]
    batch = model.score_many(xs)
    assert batch == pytest.approx([model.score(x) for x in xs], abs=1e-15)
    assert model.score_many(xs[3:10]) == batch[3:10] and model.score_many(xs[-2:]) == batch[-2:]


def test_score_many_with_a_single_learned_feature():
    model = FraudModel()
    for i in range(100):
        model.learn({"amount": float(i)}, i > 80)
    xs = [{"amount": 90.0}, {"other": 1.0}]
    assert model.score_many(xs) == pytest.approx([model.score(x) for x in xs], abs=1e-15)


def test_linear_score_is_rivers_pipeline_arithmetic_with_the_odds_corrected():
    model = trained("linear", n=500, genuine_rate=0.25)
    river = copy.deepcopy(model.river)  # River's own predict writes unseen names into the scaler
    for x, _ in separable(20, seed=3):
        p = river.predict_proba_one(x)[True]
        assert model.score(x) == pytest.approx(sigmoid(math.log(p / (1 - p)) + math.log(0.25)), abs=1e-12)


@pytest.mark.parametrize(
    "kind, expected",  # exact values pin determinism; they move only if River's maths does
    [("linear", 0.0518375), ("arf", 0.9261216), ("amf", 0.7321664)],
)
def test_training_is_deterministic_given_the_seed(kind, expected):
    a, b = trained(kind, n=600), trained(kind, n=600)
    xs = [x for x, _ in separable(300, seed=4)]
    assert a.score_many(xs) == b.score_many(xs)  # pickles may share floats differently
    assert a.score({"card_tx_count_1h": 7.0, "amount": 30.0, "hour_of_day": 3.0}) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_learning_a_separable_stream_beats_the_untrained_model(kind):
    untrained, model = FraudModel(kind), trained(kind)
    held_out = list(separable(1000, seed=9))
    ap = {m: average_precision([(m.score(x), y, 1.0) for x, y in held_out]) for m in (untrained, model)}
    assert ap[untrained] == sum(y for _, y in held_out) / len(held_out) == 0.113  # all tied: the fraud rate
    assert ap[model] > 0.95


def test_learn_many_is_learn_one_by_one():
    stream = list(separable(300))
    one_by_one = FraudModel()
    for x, y in stream:
        one_by_one.learn(x, y, 2.0)
    batched = FraudModel()
    batched.learn_many([x for x, _ in stream], [y for _, y in stream], [2.0] * len(stream))
    assert pickle.dumps(batched) == pickle.dumps(one_by_one)


def test_a_clone_is_a_fresh_model_with_the_same_parameters(model):
    clone = model.clone()
    assert clone.params == model.params and clone.labels_seen == 0 < model.labels_seen


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        FraudModel("xgboost")


# --- reasons


def test_reasons_name_the_feature_that_raised_the_risk(model):
    x = {"card_tx_count_1h": 9.0, "amount": 33.0, "hour_of_day": 12.0, "never_seen": 1.0}
    reasons = explain(model, x, top_k=2)
    assert reasons[0].feature == "card_tx_count_1h" and reasons[0].value == 9.0
    assert reasons[0].contribution > 1.0 and "strongly raises risk" in reasons[0].text
    assert len(reasons) <= 2 and "never_seen" not in {r.feature for r in reasons}


def test_explain_many_is_explain_for_each(model):
    xs = [x for x, _ in separable(100, seed=8)]
    xs += [{}, {"never_seen": 1.0}, {"card_tx_count_1h": math.nan, "amount": math.inf, "hour_of_day": 4.0}]
    assert explain_many(model, xs, 2) == [explain(model, x, 2) for x in xs]


def test_occlusion_on_a_linear_model_gives_its_exact_contributions():
    model = trained("linear")
    x = {"card_tx_count_1h": 4.0, "amount": 80.0, "hour_of_day": 2.0}
    direct = {r.feature: r.contribution for r in explain(model, x, 3)}
    occluded = {f: c for c, f, _ in _occlusion_terms(model, x, 3)}
    assert occluded == pytest.approx(direct, abs=1e-9)


# --- metrics


@pytest.mark.parametrize(
    "pairs, ap, auc",
    [
        ([(0.9, True), (0.8, True), (0.2, False)], 1.0, 1.0),
        ([(0.1, True), (0.8, False), (0.9, False)], 1 / 3, 0.0),
        ([(0.5, True), (0.5, False), (0.5, False), (0.5, False)], 0.25, 0.5),  # ties: one threshold
        ([(0.9, True), (0.7, False), (0.6, True), (0.1, False)], (1 + 2 / 3) / 2, 0.75),
    ],
)
def test_average_precision_and_roc_auc(pairs, ap, auc):
    weighted = [(s, y, 1.0) for s, y in pairs]
    assert (average_precision(weighted), roc_auc(weighted)) == pytest.approx((ap, auc))


def test_a_weight_counts_like_repeated_labels():
    once = [(0.9, True, 1.0), (0.7, False, 3.0), (0.6, True, 1.0), (0.1, False, 1.0)]
    repeated = [(0.9, True, 1.0)] + [(0.7, False, 1.0)] * 3 + [(0.6, True, 1.0), (0.1, False, 1.0)]
    assert average_precision(once) == average_precision(repeated)
    assert roc_auc(once) == roc_auc(repeated)


def test_prequential_keeps_a_bounded_window_and_leaves_out_undefined_metrics():
    tracker = Prequential(threshold=0.5, window=2)
    tracker.update(0.9, True)
    assert set(tracker.as_dict()) == {"labels", "frauds", "window", "alert_rate", "log_loss", "average_precision",
                                      "precision", "recall"}  # no ROC AUC without a genuine label
    tracker.update(0.2, False)
    tracker.update(0.7, False)
    metrics = tracker.as_dict()
    assert (metrics["labels"], metrics["frauds"], metrics["window"]) == (3.0, 1.0, 2.0)
    assert metrics["alert_rate"] == 0.5 and metrics["precision"] == 0.0 and "recall" not in metrics


# --- artifact bytes


def test_an_artifact_round_trips_with_its_sha(model):
    blob, sha = dump(model)
    xs = [x for x, _ in separable(100, seed=5)]
    assert load(blob, sha).score_many(xs) == model.score_many(xs)
    assert pickle.loads(blob)["features"] == ["amount", "card_tx_count_1h", "hour_of_day"]


@pytest.mark.parametrize(
    "alter, message",
    [
        (lambda blob, sha: (blob, "0" * 64), "sha256 mismatch"),
        (lambda blob, sha: (blob[: len(blob) // 2], sha), "sha256 mismatch"),
        (lambda blob, sha: (b"\x80\x05garbage", None), "does not unpickle"),
        (lambda blob, sha: (pickle.dumps({"format": 1, "model": "a string"}), None), "not a format-1 FraudModel"),
        (lambda blob, sha: (pickle.dumps([1, 2]), None), "not a format-1 model envelope"),
    ],
)
def test_altered_or_foreign_bytes_raise_artifact_error(alter, message):
    blob, sha = alter(*dump(FraudModel()))
    with pytest.raises(ArtifactError, match=message):
        load(blob, sha or hashlib.sha256(blob).hexdigest())  # None: a sha that matches the bad bytes


@pytest.mark.parametrize(
    "where, store",
    [("redis", RedisArtifactStore), ("file:///tmp/fraudstream-models", FileArtifactStore)],
)
def test_make_store_picks_the_store_settings_name(where, store):
    assert isinstance(make_store(Settings(artifact_store=where), redis=object()), store)


def test_make_store_refuses_an_unknown_store():
    with pytest.raises(ArtifactError, match="must be 'redis' or 'file:///path'"):
        make_store(Settings(artifact_store="s3://bucket"), redis=None)
