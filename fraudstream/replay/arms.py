"""The models ``fraudstream evaluate`` runs side by side on one stream: each an *arm* that
scores every transaction and learns from the labels as they arrive.

- :class:`OnlineArm`: a :class:`FraudModel` learning through the learner's ``Trainer``
  (genuine sampling, prequential metrics), scoring with the version last *published*
  (every ``publish_every_labels`` learned labels), as scoring does.
- :class:`TwinArm`: the linear FraudModel's arithmetic on numpy vectors
  (:mod:`fraudstream.replay.twin`, held equal to it by a test) with the Trainer's sampling
  rule: the same figures as ``linear`` at a fraction of the cost, for ablations.
- :class:`BatchArm`: a scikit-learn model refitted every ``refit_days`` of event time on
  the labels known then from the last ``window_days``: the batch challenger. Its scores
  wait in a buffer and are computed a batch at a time with the model of their moment.
- :class:`LoopArm` (kind ``loop``): the learner as configured, the whole CT loop but the
  broker: the online champion learning through the ``Trainer`` and the batch window, a
  snapshot every ``publish_every_labels``, and the batch challenger refitted every
  ``batch_refit_every_s`` with the learner's own ``refit`` (fit, judge on the held-back
  labels the champion scored live, promote or reject). It scores with the version served.

An arm is written as ``name=kind:key=value,...`` (:func:`parse_arm`), e.g.
``plain=linear:rate=1`` or ``hgb=hgb:window_days=28``.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from services.learner.trainer import Trainer, sampled
from services.model.fraud_model import CLIP_SD, L2, LEARNING_RATE, FraudModel, sigmoid
from shared.settings import Settings

if TYPE_CHECKING:  # imported where fitted: scikit-learn takes a second to import
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

DAY_S = 86400.0
ONLINE_KINDS = ("linear", "arf", "amf", "twin", "loop")
BATCH_KINDS = ("hgb", "forest")
FEATURE_SETS = ("base", "shares", "no_rates")
"""base: the services' features (with the merchant label shares); shares: the same, the name
kept for existing commands; no_rates: base without ``merchant_fraud_rate_*``."""


@dataclass(frozen=True)
class ArmSpec:
    name: str
    kind: str
    options: dict[str, str]

    def get(self, key: str, default: float) -> float:
        return float(self.options.get(key, default))


def parse_arm(text: str) -> ArmSpec:
    """
    >>> parse_arm("plain=linear:rate=1,lr=0.05")
    ArmSpec(name='plain', kind='linear', options={'rate': '1', 'lr': '0.05'})
    >>> parse_arm("hgb").kind
    'hgb'
    """
    name, _, rest = text.partition("=") if "=" in text.split(":")[0] else (text.split(":")[0], "", text)
    kind, _, options = rest.partition(":")
    if kind not in ONLINE_KINDS + BATCH_KINDS:
        raise ValueError(f"arm {text!r}: unknown kind {kind!r}; expected one of {ONLINE_KINDS + BATCH_KINDS}")
    pairs = dict(p.split("=", 1) for p in options.split(",") if p)
    if pairs.get("features", "base") not in FEATURE_SETS:
        raise ValueError(f"arm {text!r}: features must be one of {FEATURE_SETS}")
    return ArmSpec(name, kind, pairs)


def picker(columns: tuple[str, ...], names: tuple[str, ...]) -> Callable[[list[float]], Sequence[float]]:
    """What takes an arm's ``names`` out of a feature row in ``columns`` order.

    >>> picker(("a", "b", "c"), ("c", "a"))([1.0, 2.0, 3.0]), picker(("a", "b"), ("a", "b"))([1.0, 2.0])
    ((3.0, 1.0), [1.0, 2.0])
    """
    if names == columns:
        return lambda x: x
    at = [columns.index(n) for n in names]
    return itemgetter(*at) if len(at) > 1 else lambda x: (x[at[0]],)


class OnlineArm:
    """Takes feature rows in ``columns`` order; its model sees ``names`` of them, as dicts."""

    def __init__(self, spec: ArmSpec, settings: Settings, columns: tuple[str, ...], names: tuple[str, ...]):
        rate = spec.get("rate", settings.genuine_sample_rate)
        model = FraudModel(spec.kind, genuine_rate=rate, lr=spec.get("lr", LEARNING_RATE),
                           l2=spec.get("l2", L2), clip_sd=spec.get("clip", CLIP_SD))
        self.name, self.names, self._pick = spec.name, names, picker(columns, names)
        self.trainer = Trainer(model, rate, settings.alert_threshold, settings.retrain_window_labels)
        self.every = int(spec.get("publish", settings.publish_every_labels))
        self.versions = 0
        self._publish()

    def _publish(self) -> None:
        model = self.trainer.model
        if model.kind == "linear":  # the read-out is what scoring computes with: immutable, cheap
            coefficients = model.coefficients()
            self._score = lambda x: sigmoid(coefficients.logit(x))
        else:
            self._score = copy.deepcopy(model).score

    def score(self, x: list[float]) -> float:
        return self._score(dict(zip(self.names, self._pick(x))))

    def learn(self, tx_id: str, x: list[float], y: bool, ts: float) -> None:
        self.trainer.learn(tx_id, dict(zip(self.names, self._pick(x))), y, ts)
        if self.trainer.learned_since_publish >= self.every:
            self.trainer.learned_since_publish = 0
            self.versions += 1
            self._publish()

    def finish(self) -> None:
        pass


class BatchArm:
    def __init__(self, spec: ArmSpec, settings: Settings, columns: tuple[str, ...], names: tuple[str, ...],
                 scores: array):
        self.name, self.names, self.kind, self.scores, self.spec = spec.name, names, spec.kind, scores, spec
        self._pick = picker(columns, names)
        self.refit_s = spec.get("refit_days", 7) * DAY_S
        self.window_s = spec.get("window_days", 28) * DAY_S
        self.rate = spec.get("rate", settings.genuine_sample_rate)
        self.seed = int(spec.get("seed", 42))
        self.examples: list[tuple[float, Sequence[float], bool]] = []
        self.pending: list[Sequence[float]] = []
        """Rows not scored yet, in stream order: scores are appended when they are."""
        self.model: HistGradientBoostingClassifier | RandomForestClassifier | None = None
        self.next_fit: float | None = None
        self.versions, self.prior = 0, 0.01

    def score_later(self, x: list[float], ts: float) -> None:
        if self.next_fit is None:
            self.next_fit = ts + self.refit_s
        elif ts >= self.next_fit:
            self._flush()
            self._fit(ts)
            self.next_fit = ts + self.refit_s
        self.pending.append(self._pick(x))
        if len(self.pending) >= 4096:
            self._flush()

    def learn(self, tx_id: str, x: list[float], y: bool, ts: float, card: str | None = None) -> None:
        if y or sampled(tx_id, self.rate):
            self.examples.append((ts, self._pick(x), y))

    def _fit(self, now: float) -> None:
        self.examples = [e for e in self.examples if e[0] > now - self.window_s]
        ys = np.array([e[2] for e in self.examples], dtype=bool)
        if ys.sum() < 10 or (~ys).sum() < 10:
            return
        X = np.array([e[1] for e in self.examples], dtype=np.float64)
        weights = np.where(ys, 1.0, 1.0 / self.rate)
        if self.kind == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(max_iter=int(self.spec.get("trees", 100)), learning_rate=0.1,
                                                   max_leaf_nodes=31, early_stopping=False, random_state=self.seed)
        else:
            from sklearn.ensemble import RandomForestClassifier

            model = RandomForestClassifier(n_estimators=int(self.spec.get("trees", 100)), min_samples_leaf=5,
                                           max_features="sqrt", n_jobs=2, random_state=self.seed)
        self.model = model.fit(X, ys, sample_weight=weights)
        self.versions += 1

    def _flush(self) -> None:
        if not self.pending:
            return
        if self.model is None:
            self.scores.extend([self.prior] * len(self.pending))
        else:
            p = self.model.predict_proba(np.array(self.pending, dtype=np.float64))[:, 1]
            self.scores.extend(np.where(np.isfinite(p), p, self.prior).tolist())
        self.pending = []

    def finish(self) -> None:
        self._flush()


class TwinArm:
    def __init__(self, spec: ArmSpec, settings: Settings, columns: tuple[str, ...], names: tuple[str, ...],
                 scores: array):
        from fraudstream.replay.twin import LinearTwin

        self.rate = spec.get("rate", settings.genuine_sample_rate)
        self.twin = LinearTwin(names, genuine_rate=self.rate, lr=spec.get("lr", LEARNING_RATE),
                               l2=spec.get("l2", L2), clip_sd=spec.get("clip", CLIP_SD))
        self.name, self.names, self.scores = spec.name, names, scores
        self.every = int(spec.get("publish", settings.publish_every_labels))
        self.learned = self.versions = 0
        self.serving = self.twin.snapshot()
        self.pending: list[Sequence[float]] = []
        """Rows not scored yet, in stream order: scores are appended when they are."""
        self._pick = picker(columns, names)

    def score_later(self, x: list[float], ts: float) -> None:
        self.pending.append(self._pick(x))
        if len(self.pending) >= 4096:
            self._flush()

    def learn(self, tx_id: str, x: list[float], y: bool, ts: float, card: str | None = None) -> None:
        if not y and not sampled(tx_id, self.rate):
            return
        self.twin.learn(np.array(self._pick(x), dtype=np.float64), y)
        self.learned += 1
        if self.learned >= self.every:
            self._flush()  # what came before the new version was scored by the old one
            self.learned = 0
            self.versions += 1
            self.serving = self.twin.snapshot()

    def _flush(self) -> None:
        if self.pending:
            self.scores.extend(self.serving.score_many(np.array(self.pending, dtype=np.float64)))
            self.pending = []

    def finish(self) -> None:
        self._flush()


class LoopArm:
    """The learner's model line with its scheduled batch refits; scores with the version served.

    Labels are learned in runs of ``LABEL_RUN`` (the learner takes them a consumed batch at a
    time too; a batch champion scores a run in one prediction); the snapshot and the refit
    schedule are checked after each run. Keys: rate, lr, publish, refit_days, window_days.
    """

    LABEL_RUN = 256

    def __init__(self, spec: ArmSpec, settings: Settings, columns: tuple[str, ...], names: tuple[str, ...],
                 scores: array):
        from services.learner.batch_window import BatchWindow
        from services.learner.refits import RefitClock
        from services.learner.retrain_batch import BatchConfig

        self.name, self.names, self.scores = spec.name, names, scores
        self._pick = picker(columns, names)
        self.rate = spec.get("rate", settings.genuine_sample_rate)
        model = FraudModel(genuine_rate=self.rate, lr=spec.get("lr", LEARNING_RATE))
        window = BatchWindow(spec.get("window_days", settings.batch_window_s / DAY_S) * DAY_S,
                             settings.batch_window_labels)
        self.trainer = Trainer(model, self.rate, settings.alert_threshold, settings.retrain_window_labels, window)
        self.every = int(spec.get("publish", settings.publish_every_labels))
        self.refits = RefitClock(spec.get("refit_days", settings.batch_refit_every_s / DAY_S) * DAY_S)
        self.config = BatchConfig.from_settings(settings)
        self.labels: list = []
        self.pending: list[dict[str, float]] = []
        self.versions = 0
        self._serve()

    def _serve(self) -> None:
        """The version scoring serves from now on (the trainer's model as it is)."""
        self._flush()
        model = self.trainer.model
        if isinstance(model, FraudModel) and model.kind == "linear":
            coefficients = model.coefficients()
            self.serving: Callable[[list[dict[str, float]]], list[float]] = (
                lambda xs: [sigmoid(coefficients.logit(x)) for x in xs])
        else:  # a batch model: its trees do not move while its online line learns
            self.serving = copy.deepcopy(model).score_many
        self.versions += 1

    def score_later(self, x: list[float], ts: float) -> None:
        self.pending.append(dict(zip(self.names, self._pick(x))))
        if len(self.pending) >= 4096:
            self._flush()

    def learn(self, tx_id: str, x: list[float], y: bool, ts: float, card: str | None = None) -> None:
        if y or sampled(tx_id, self.rate):
            self.labels.append((tx_id, dict(zip(self.names, self._pick(x))), y, ts, card))
        if len(self.labels) >= self.LABEL_RUN:
            self._learn_run()

    def _learn_run(self) -> None:
        from services.learner.retrain_batch import refit

        self._flush()  # what came before these labels was scored by the version before them
        trainer = self.trainer
        trainer.learn_many(self.labels)
        self.labels = []
        if trainer.learned_since_publish >= self.every:
            trainer.learned_since_publish = 0
            self._serve()
        clock = self.refits.due(trainer)
        if clock is None:
            return
        self.refits.done(clock)
        decision = refit(trainer.model, list(trainer.recent), self.config, trainer.batch)
        if decision.outcome == "promote" and decision.challenger is not None:
            trainer.replace(decision.challenger, decision.window, decision.challenger_pairs)
            self._serve()

    def _flush(self) -> None:
        if self.pending:
            self.scores.extend(self.serving(self.pending))
            self.pending = []

    def finish(self) -> None:
        self._flush()
