"""The batch challenger's pure parts: card precision@k, the ``hgb`` kind's scoring contract and
artifact, the refit's fit/judge/decide, and the learner's schedule announcing the verdict.
Seeded data, exact expectations."""

from __future__ import annotations

import asyncio
import math
import pickle
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.learner.batch_window import BatchWindow
from services.learner.retrain import Example, RetrainConfig, retrain
from services.learner.retrain_batch import BatchConfig, online_line, refit
from services.learner.startup import assemble
from services.learner.trainer import Trainer
from services.model.artifacts import dump, load
from services.model.batch import BatchModel, fit
from services.model.fraud_model import FraudModel
from services.model.metrics import card_precision_at_k
from services.model.reasons import explain, explain_many
from shared.codec import decode
from shared.events import ModelVersionPublished, TrainingWindow
from shared.settings import Settings
from tests.unit.test_retrain import Store

DAY = 86_400.0
T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()  # 00:00 UTC


def band(seed: int, n: int = 900, champion_score=None) -> list[Example]:
    """One transaction every 4.8 minutes (3 days); fraud in the afternoon (hours 14–18) with
    probability 0.6, at any amount: an interval no single slope ranks."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + 288 * i
        hour = float(int(ts % DAY // 3600))
        fraud = 14 <= hour < 18 and rng.random() < 0.6
        x = {"hour_of_day": hour, "amount": rng.lognormvariate(3.5, 1.0)}
        score = champion_score(x, fraud, rng) if champion_score else None
        out.append(Example(x, fraud, ts, 1.0, score, f"card-{rng.randrange(60)}"))
    return out


def hour_linear(x, fraud, rng) -> float:
    """What a linear champion makes of the band: the later the hour, the riskier."""
    return x["hour_of_day"] / 100


# --- card precision@k


def test_card_precision_at_k_counts_each_card_once_per_day_and_averages_the_days():
    rows = [
        (0.9, False, "a", T0 + 10), (0.8, True, "a", T0 + 20),  # a: top 0.9, fraudulent that day
        (0.7, False, "b", T0 + 30), (0.6, True, "c", T0 + 40), (0.65, False, "d", T0 + 50),
        (0.3, True, "a", T0 + DAY + 5),  # the next day, a again, on its own
    ]
    assert card_precision_at_k(rows, 1) == 1.0  # day 1: a; day 2: a
    assert card_precision_at_k(rows, 2) == 0.75  # day 1: a, b → 1/2; day 2: a → 1
    assert card_precision_at_k(rows, 3) == pytest.approx((1 / 3 + 1) / 2)  # a, b, d: d outranks c
    assert card_precision_at_k(rows, 4) == pytest.approx((2 / 4 + 1) / 2)
    assert card_precision_at_k(list(reversed(rows)), 3) == card_precision_at_k(rows, 3)


def test_card_precision_ties_rank_by_card_id_and_no_rows_is_undefined():
    tied = [(0.5, False, "b", T0), (0.5, True, "a", T0), (0.5, False, "c", T0)]
    assert card_precision_at_k(tied, 1) == 1.0  # a before b
    assert math.isnan(card_precision_at_k([], 5))


# --- the hgb kind


def test_batch_model_scores_a_batch_as_one_by_one_and_takes_missing_and_extreme_values():
    examples = band(1)
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [e.weight for e in examples], FraudModel(),
                trees=30)
    xs = [e.x for e in examples[:50]] + [{"hour_of_day": 15.0}, {"hour_of_day": math.nan, "amount": math.inf}, {}]
    many = model.score_many(xs)
    assert many == [model.score(x) for x in xs]
    assert all(0.0 <= p <= 1.0 for p in many)
    assert model.score({"hour_of_day": 15.0, "amount": 30.0}) > 0.4 > 0.05 > model.score({"hour_of_day": 9.0,
                                                                                          "amount": 30.0})
    assert model.score_many([]) == []
    assert (model.kind, model.feature_names, model.fitted_labels, model.fitted_frauds) == \
        ("hgb", ["amount", "hour_of_day"], 900, sum(e.is_fraud for e in examples))
    with pytest.raises(TypeError, match="hgb model has no coefficients"):
        model.coefficients()


def test_batch_model_learns_through_its_online_line_only():
    examples = band(2)
    online = FraudModel()
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [1.0] * len(examples), online, trees=20)
    before = model.score_many([e.x for e in examples[:20]])
    for e in examples[:30]:
        model.learn(e.x, e.is_fraud)
    assert model.score_many([e.x for e in examples[:20]]) == before  # the trees learn at refit only
    assert online.labels_seen == model.labels_seen == 30
    assert model.frauds_seen == sum(e.is_fraud for e in examples[:30])
    fresh = model.clone()  # what a retrain request trains: a fresh online model
    assert isinstance(fresh, FraudModel) and fresh.labels_seen == 0 and fresh.params == online.params


def test_batch_artifact_round_trips_with_its_sha256():
    examples = band(3)
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [1.0] * len(examples), FraudModel(), trees=20)
    blob, sha = dump(model)
    assert pickle.loads(blob)["kind"] == "hgb" and pickle.loads(blob)["features"] == ["amount", "hour_of_day"]
    loaded = load(blob, sha)
    assert isinstance(loaded, BatchModel)
    xs = [e.x for e in examples[:40]]
    assert loaded.score_many(xs) == model.score_many(xs)


def test_reasons_of_a_batch_model_are_occlusions_scored_in_one_batch():
    examples = band(4)
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [1.0] * len(examples), FraudModel(), trees=30)
    xs = [{"hour_of_day": 15.0, "amount": 30.0}, {"hour_of_day": 3.0, "amount": 900.0}]
    many = explain_many(model, xs, top_k=2)
    assert many == [explain(model, x, top_k=2) for x in xs]
    (first,) = [r for r in many[0] if r.feature == "hour_of_day"]
    assert first.contribution > 1.0 and first.text.endswith("strongly raises risk")  # the afternoon
    assert explain_many(model, xs, top_k=0) == [[], []]


def test_a_batch_champion_scores_the_labels_it_learns_in_one_prediction_as_one_by_one():
    examples = band(9)
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [1.0] * len(examples), FraudModel(), trees=20)
    labels = [(f"tx-{i}", e.x, e.is_fraud, e.ts, e.card) for i, e in enumerate(band(10, n=300))]
    together, one_by_one = (Trainer(pickle.loads(pickle.dumps(model)), 0.5, 0.8) for _ in range(2))
    kept = together.learn_many(labels)
    assert kept == sum(one_by_one.learn(*label) for label in labels) == len(together.recent)
    assert list(together.recent) == list(one_by_one.recent)  # same labels, same live scores, same order
    assert together.metrics.as_dict() == one_by_one.metrics.as_dict()
    assert together.model.labels_seen == one_by_one.model.labels_seen == kept
    online, online_one_by_one = Trainer(FraudModel(), 0.5, 0.8), Trainer(FraudModel(), 0.5, 0.8)
    assert online.learn_many(labels) == kept == sum(online_one_by_one.learn(*label) for label in labels)
    assert list(online.recent) == list(online_one_by_one.recent)  # scored before each label, as learn does


# --- fit, judge, decide


def test_trees_beat_a_linear_champion_on_a_band_and_are_promoted():
    decision = refit(FraudModel(), band(5, champion_score=hour_linear),
                     BatchConfig(min_labels=100, min_frauds=10, card_k=5, trees=30))
    assert decision.outcome == "promote"
    assert (decision.train_size, decision.holdout_size) == (630, 270)
    assert decision.metrics["average_precision"] == pytest.approx(0.575981, abs=1e-6)
    assert decision.champion_metrics["average_precision"] == pytest.approx(0.159951, abs=1e-6)
    assert decision.metrics["card_precision_at_k"] == 1.0
    assert decision.champion_metrics["card_precision_at_k"] == pytest.approx(0.2)
    assert decision.metrics["train_frauds"] == 63 == sum(e.is_fraud for e in band(5)[:630])
    assert decision.why == ("batch challenger AP 0.5760 ≥ champion AP 0.1600 + margin 0.02, card precision@5 "
                            "1.0000 ≥ 0.2000, on 270 held-back labels (28 frauds) the champion scored live; "
                            "fitted on 630 (63 frauds)")
    # promoted, the window carries no live score: the new champion did not score it live
    assert [e.ts for e in decision.window] == sorted(e.ts for e in decision.window)
    assert all(e.champion_score is None for e in decision.window)
    assert len(decision.challenger_pairs) == 270


def test_trees_are_fitted_on_the_longer_batch_window_older_than_the_held_back_labels():
    # 9 days of the band; the retrain window keeps the last 900 labels (3 days), the batch window all
    days = band(8, n=2700, champion_score=hour_linear)
    config = BatchConfig(min_labels=100, min_frauds=10, card_k=5, trees=30)
    window = BatchWindow(span_s=28 * DAY, max_labels=200_000)
    for e in days:
        window.add(e.x, e.is_fraud, e.ts, e.weight)
    short, longer = refit(FraudModel(), days[-900:], config), refit(FraudModel(), days[-900:], config, window)
    assert (short.train_size, longer.train_size) == (630, 2430)  # all of the 9 days before the held-back 270
    assert longer.metrics["train_frauds"] == sum(e.is_fraud for e in days[:2430])
    assert (longer.holdout_size, longer.start) == (270, days[0].ts)
    assert longer.why.endswith(f"fitted on 2430 ({int(longer.metrics['train_frauds'])} frauds)")
    # a window of another feature set (or none yet) holds fewer than the retrain window: that one is used
    other = BatchWindow(span_s=28 * DAY, max_labels=200_000)
    other.add({"another": 1.0}, False, days[-1].ts, 1.0)
    assert refit(FraudModel(), days[-900:], config, other).train_size == 630


def test_trees_no_better_than_the_champion_are_rejected():
    perfect = band(5, champion_score=lambda x, y, rng: 0.9 if y else 0.05)
    decision = refit(FraudModel(), perfect, BatchConfig(min_labels=100, min_frauds=10, card_k=5, trees=30))
    assert decision.outcome == "reject" and decision.challenger is not None
    assert decision.champion_metrics["average_precision"] == 1.0
    assert "< champion AP 1.0000 + margin 0.02" in decision.why


def test_better_ap_but_worse_card_precision_is_rejected():
    # the champion ranks 4 frauds in 10 first (the rest last): a poor AP, but its top cards are fraudulent
    def card_wise(x, y, rng):
        return (0.99 if int(x["amount"] * 1e6) % 10 < 4 else 0.0) if y else 0.5

    decision = refit(FraudModel(), band(5, champion_score=card_wise),
                     BatchConfig(min_labels=100, min_frauds=10, card_k=8, trees=30))
    assert decision.metrics["average_precision"] == pytest.approx(0.575981, abs=1e-6)
    assert decision.champion_metrics["average_precision"] == pytest.approx(0.423810, abs=1e-6)
    assert (decision.metrics["card_precision_at_k"], decision.champion_metrics["card_precision_at_k"]) == (0.75, 1.0)
    assert decision.outcome == "reject" and "card precision@8 0.7500 < 1.0000" in decision.why


def test_too_few_labels_or_no_live_scores_are_refused():
    config = BatchConfig(min_labels=100, min_frauds=10, trees=10)
    few = refit(FraudModel(), band(6, n=80, champion_score=hour_linear), config)
    assert (few.outcome, few.challenger) == ("refuse", None) and "80 labels" in few.why
    # a batch champion's window, right after its promotion: nothing in it was scored live
    unscored = refit(FraudModel(), band(6), config)
    assert unscored.outcome == "refuse" and "0 held-back labels the champion scored live" in unscored.why


def test_the_challenger_carries_the_champions_online_line():
    champion = FraudModel()
    decision = refit(champion, band(7, champion_score=hour_linear), BatchConfig(min_labels=100, trees=10))
    assert isinstance(decision.challenger, BatchModel) and decision.challenger.online is champion
    assert online_line(decision.challenger) is champion and online_line(champion) is champion
    # a retrain request against a batch champion trains a fresh online challenger
    window = band(8, champion_score=lambda x, y, rng: 0.5)
    asked = retrain(decision.challenger, window, RetrainConfig(min_labels=100))
    assert isinstance(asked.challenger, FraudModel)


def with_line(examples: list[Example], line_score) -> list[Example]:
    return [replace(e, line_score=line_score(e)) for e in examples]


def test_a_batch_champions_online_line_is_judged_and_wins_the_serving_back():
    noise = random.Random(3)
    trees = fit([e.x for e in band(4)], [noise.random() < 0.1 for _ in range(900)], [1.0] * 900, FraudModel(),
                trees=10)  # trees fitted on noise: a champion that ranks nothing
    config = BatchConfig(min_labels=100, min_frauds=10, card_k=5, trees=30)
    # its live scores say nothing; its online line's (before learning each label) rank the band
    window = with_line(band(5, champion_score=lambda x, y, rng: 0.5), lambda e: 0.9 if e.is_fraud else 0.05)
    decision = refit(trees, window, config)
    assert decision.outcome == "promote" and decision.challenger is trees.online
    assert decision.metrics["average_precision"] == 1.0 and decision.why.startswith(
        "the champion's online line AP 1.0000 ≥ champion AP 0.1037 + margin 0.02, card precision@5 1.0000 ≥ "
        "0.4000, above the batch challenger's AP 0.5760; batch challenger AP 0.5760 ≥ champion AP 0.1037")
    # the line scored every kept label before learning it: those are now the champion's live scores
    assert [e.champion_score for e in decision.window] == [0.9 if e.is_fraud else 0.05 for e in decision.window]
    assert all(e.line_score is None for e in decision.window) and len(decision.challenger_pairs) == 270

    # a line no better than the trees leaves the trees' verdict as it was
    flat = refit(trees, with_line(band(5, champion_score=lambda x, y, rng: 0.5), lambda e: 0.5), config)
    assert isinstance(flat.challenger, BatchModel) and flat.outcome == "promote"
    assert flat.why.startswith("batch challenger AP 0.5760")
    # an online champion is its own line: nothing more is judged
    online = refit(FraudModel(), window, config)
    assert isinstance(online.challenger, BatchModel)


def test_the_trainer_keeps_a_batch_champions_line_score_before_it_learns():
    examples = band(9)
    model = fit([e.x for e in examples], [e.is_fraud for e in examples], [1.0] * len(examples), FraudModel(), trees=20)
    trainer = Trainer(model, 1.0, 0.8)
    first, second = band(10, n=2)
    expected = [model.online.score(first.x)]
    trainer.learn("tx-1", first.x, first.is_fraud, first.ts, first.card)
    expected.append(model.online.score(second.x))  # the line has learned the first label
    trainer.learn_many([("tx-2", second.x, second.is_fraud, second.ts, second.card)])
    assert [e.line_score for e in trainer.recent] == expected and expected[0] != expected[1]
    # an online champion is its own line: no second score
    online = Trainer(FraudModel(), 1.0, 0.8)
    online.learn("tx-1", first.x, first.is_fraud, first.ts, first.card)
    assert online.recent[0].line_score is None


# --- the schedule in the learner


def learner_with(examples: list[Example], history=(), **settings):
    s = Settings(genuine_sample_rate=1.0, retrain_min_labels=100, batch_trees=30, batch_card_k=5, **settings)
    trainer = Trainer(FraudModel(), 1.0, s.alert_threshold, s.retrain_window_labels)
    trainer.recent.extend(examples)
    trainer.start = datetime.fromtimestamp(min(e.ts for e in examples), UTC)
    trainer.end = datetime.fromtimestamp(max(e.ts for e in examples), UTC)
    return assemble(s, None, None, Store(), trainer, history=list(history))


def test_the_refit_is_due_a_period_after_the_first_label_and_a_promotion_trains_on_from_it():
    examples = band(5, champion_score=hour_linear)  # 3 days of labels, less 288 s
    learner = learner_with(examples, batch_refit_every_s=3 * DAY)
    assert asyncio.run(learner.refits.maybe_refit()) is None  # due at 3 days
    assert learner.refits.clock.next_due == T0 + 3 * DAY and learner.publisher.unsent == []

    learner = learner_with(examples, batch_refit_every_s=2 * DAY)
    online = learner.trainer.model
    online.labels_seen, online.frauds_seen = 900, 91  # what the line learned (set here: the window is given)
    learner.trainer.learned_since_publish = 7
    announced = asyncio.run(learner.refits.maybe_refit())
    (out,) = learner.publisher.unsent
    event = decode(out.value, ModelVersionPublished)
    assert event == announced
    assert (event.version, event.parent, event.reason, event.status) == ("v1", None, "batch", "champion")
    assert event.why is not None and event.why.startswith("batch challenger AP 0.5760")
    assert event.training_window == TrainingWindow(labels_seen=900, frauds_seen=91,  # the line's, as any snapshot's
                                                   start=datetime.fromtimestamp(T0, UTC),
                                                   end=datetime.fromtimestamp(examples[-1].ts, UTC))
    assert (event.metrics["train_labels"], event.metrics["train_frauds"]) == (630, 63)
    model = learner.trainer.model
    assert isinstance(model, BatchModel) and model.online is online  # the online line learns on
    assert learner.version == "v1" and learner.trainer.learned_since_publish == 0
    assert isinstance(load(learner.publisher.artifacts.blobs["v1"], event.artifact_sha256), BatchModel)
    assert learner.refits.clock.next_due == examples[-1].ts + 2 * DAY
    assert learner.ready_to_commit() is True  # the promoted version holds everything consumed

    learner.trainer.learn("tx-new", {"hour_of_day": 15.0, "amount": 20.0}, True, examples[-1].ts + 60, "card-1")
    assert online.labels_seen == 901 and learner.trainer.recent[-1].champion_score == model.score(
        {"hour_of_day": 15.0, "amount": 20.0})
    assert asyncio.run(learner.refits.maybe_refit()) is None  # not due again for 2 days


def test_a_rejected_refit_is_announced_and_the_champion_stays():
    learner = learner_with(band(5, champion_score=lambda x, y, rng: 0.9 if y else 0.05), batch_refit_every_s=DAY)
    champion = learner.trainer.model
    learner.trainer.learned_since_publish = 3
    event = asyncio.run(learner.refits.maybe_refit())
    assert event is not None and (event.reason, event.status) == ("batch", "rejected")
    assert learner.trainer.model is champion and learner.version is None
    assert "v1" in learner.publisher.artifacts.blobs  # kept, to inspect or promote by hand
    assert learner.ready_to_commit() is False  # the champion's own labels still wait for its snapshot


def test_the_schedule_resumes_from_the_latest_batch_verdict_and_zero_turns_it_off():
    end = datetime.fromtimestamp(T0 + DAY, UTC)
    last = ModelVersionPublished(version="v4", reason="batch", status="rejected", artifact_ref="mem:v4",
                                 artifact_sha256="0" * 64, training_window=TrainingWindow(end=end))
    learner = learner_with(band(5, champion_score=hour_linear), history=[last], batch_refit_every_s=DAY)
    assert learner.refits.clock.next_due == T0 + 2 * DAY
    assert learner.refits.due() == band(5)[-1].ts  # 3 days of labels: due
    off = learner_with(band(5, champion_score=hour_linear), batch_refit_every_s=0)
    assert off.refits.due() is None and asyncio.run(off.refits.maybe_refit()) is None


def test_a_refused_refit_announces_nothing_and_waits_a_period():
    examples = band(5)  # no live scores: refused
    learner = learner_with(examples, batch_refit_every_s=DAY)
    assert asyncio.run(learner.refits.maybe_refit()) is None
    assert learner.publisher.unsent == [] and learner.refits.decisions[-1].outcome == "refuse"
    assert learner.refits.clock.next_due == examples[-1].ts + DAY


def test_batch_settings_are_validated():
    with pytest.raises(ValueError):
        Settings(batch_refit_every_s=-1)
    with pytest.raises(ValueError):
        Settings(batch_card_k=0)
    assert Settings().batch_refit_every_s == timedelta(days=1).total_seconds()
