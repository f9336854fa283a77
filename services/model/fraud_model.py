"""The online fraud model, behind River's contract: ``learn`` changes state, ``score`` never does.

Features are an open ``dict[str, float]``. A feature the model has not learned, a missing one
or a NaN contributes nothing (the linear kind takes it to be at its running mean); ±inf counts
as the most extreme value. Learning skips non-finite and absurd (> 1e12) values, which would
wreck the running statistics for good.

Class imbalance (fraud < 1 %): the learner keeps every fraud label but only a share
``genuine_rate`` of the genuine ones (``settings.genuine_sample_rate``). The model learns from
that richer stream with unit weights and corrects its odds back to the full stream at score
time (odds × ``genuine_rate``: prior correction for undersampling). Weighting each genuine
label by 1/rate instead calibrated as well and ranked alike on simulated traffic (``compare``),
but makes each genuine SGD step 10× larger and does not exist for forests, which take no sample weights.
``genuine_rate`` is the share of *all* genuine transactions that reach ``learn``.

>>> model = FraudModel(prior=0.01)
>>> round(model.score({"amount": 120.0}), 6)          # untrained: the prior, never 0.5
0.01
>>> for i in range(300):
...     model.learn({"amount": float(10 + i % 7), "card_tx_count_1h": float(i % 2)}, False)
...     model.learn({"amount": 900.0 + i % 5, "card_tx_count_1h": 9.0 + i % 2}, True)
>>> round(model.score({"amount": 950.0, "card_tx_count_1h": 8.0}), 3), round(model.score({"amount": 12.0}), 3)
(0.347, 0.055)
"""

from __future__ import annotations

import math
import random
from functools import cached_property, partial
from operator import itemgetter
from typing import TypedDict

import numpy as np
from river import compose, forest, linear_model, optim, preprocessing

KINDS = ("linear", "arf", "amf")
LIMIT = 1e12
"""Beyond any real feature value."""
LEARNING_RATE = 0.003
"""SGD's step for the linear kind's weights (River's intercept keeps its own 0.01). Chosen
on simulated files (``docs/evaluate.md``, "Defaults"): 0.003 ranked frauds better than 0.01
on all four files tried (average precision +0.02..+0.03), 0.001 is too slow for a short history,
0.005 already worse and 0.05 far worse."""
L2 = 1e-4
CLIP_SD = 5.0
"""Standardised values are clipped to ±5 sd: the features are heavy-tailed (z-scores of
10 000 occur) and one such value throws SGD far off. On simulated traffic (two seeds) the
clip raised second-half average precision from 0.19 to 0.25 and from 0.33 to 0.36 with
SGD at lr 0.01; lr 0.05 scored 0.09 and 0.21."""


def clip_standardised(x: dict[str, float], limit: float = CLIP_SD) -> dict[str, float]:
    """The linear pipeline's middle step (module level, so that models pickle).

    >>> clip_standardised({"a": 12.0, "b": -0.5, "c": -7.0})
    {'a': 5.0, 'b': -0.5, 'c': -5.0}
    """
    return {k: limit if v > limit else -limit if v < -limit else v for k, v in x.items()}


class Coefficients:
    """A linear model read out once, in raw feature units, for the features it has weighed:
    ``logit = intercept + Σ slope[f] · (clip(x[f], lo[f], hi[f]) − mean[f])`` where the clip
    is ±``clip_sd`` running standard deviations around the running mean."""

    def __init__(self, intercept: float, scaler: preprocessing.StandardScaler, weights: dict[str, float],
                 clip_sd: float = CLIP_SD):
        self.intercept = intercept
        self.means = {f: scaler.means[f] for f, var in scaler.vars.items() if var > 0 and weights.get(f)}
        self.terms = {}  # feature → (lo, hi, mean, slope)
        for f, mean in self.means.items():
            std = scaler.vars[f] ** 0.5
            self.terms[f] = (mean - clip_sd * std, mean + clip_sd * std, mean, weights[f] / std)
        self.names = tuple(self.terms)
        # a tuple of the values in column order, made in C; itemgetter of one name gives a bare value
        self._values = itemgetter(*self.names) if len(self.names) > 1 else lambda x: (x[self.names[0]],)

    @cached_property
    def _columns(self) -> np.ndarray:
        """lo, hi, mean, slope as rows: built on the first batch, not per read-out (the trainer
        reads one out after every label it learns, to score the next one)."""
        return np.array(list(self.terms.values())).reshape(-1, 4).T

    def term(self, feature: str, value: float) -> float:
        """One learned feature's part of the logit."""
        lo, hi, mean, slope = self.terms[feature]
        return slope * ((hi if value > hi else lo if value < lo else value) - mean)

    def logit(self, x: dict[str, float]) -> float:
        z, terms = self.intercept, self.terms
        for name, value in x.items():
            t = terms.get(name)
            if t is not None:
                z += t[3] * ((t[1] if value > t[1] else t[0] if value < t[0] else value) - t[2])
        if z != z:  # a NaN value: score as if it were missing
            return self.logit({k: v for k, v in x.items() if v == v})
        return z

    def matrix(self, xs: list[dict[str, float]]) -> np.ndarray:
        """The batch's values of the learned features, columns in ``names`` order."""
        return np.array([self._row(x) for x in xs], dtype=float).reshape(len(xs), len(self.names))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each value's part of the logit (``term`` for a whole matrix; NaN gives 0)."""
        lo, hi, mean, slope = self._columns
        return (np.clip(np.where(np.isnan(X), mean, X), lo, hi) - mean) * slope

    def probabilities(self, xs: list[dict[str, float]]) -> list[float]:
        if not self.names:
            return [sigmoid(self.intercept)] * len(xs)
        # a sum along each row, not a matmul: its rounding never depends on the batch's size
        z = self.contributions(self.matrix(xs)).sum(axis=1) + self.intercept
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).tolist()

    def _row(self, x: dict[str, float]) -> tuple[float, ...] | list[float]:
        try:
            return self._values(x)
        except KeyError:  # a feature is missing: it sits at its mean
            return [x.get(f, m) for f, m in self.means.items()]


def sigmoid(z: float) -> float:
    """Logistic function that never overflows.

    >>> sigmoid(0.0), sigmoid(-1000.0), sigmoid(1000.0)
    (0.5, 0.0, 1.0)
    """
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ModelParams(TypedDict):
    """What :class:`FraudModel` was built with, enough to build its twin."""

    kind: str
    seed: int
    prior: float
    genuine_rate: float
    lr: float
    l2: float
    n_models: int
    clip_sd: float


class FraudModel:
    """One online model chosen by name (``linear``, ``arf`` or ``amf``); pickles whole."""

    def __init__(
        self,
        kind: str = "linear",
        *,
        seed: int = 42,
        prior: float = 0.01,
        genuine_rate: float = 1.0,
        lr: float = LEARNING_RATE,
        l2: float = L2,
        n_models: int = 10,
        clip_sd: float = CLIP_SD,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        if not (0 < prior < 1 and 0 < genuine_rate <= 1):
            raise ValueError("prior must be in (0, 1) and genuine_rate in (0, 1]")
        self.params = ModelParams(kind=kind, seed=seed, prior=prior, genuine_rate=genuine_rate,
                                  lr=lr, l2=l2, n_models=n_models, clip_sd=clip_sd)
        self.clip_sd = clip_sd if clip_sd > 0 else math.inf
        """Standardised values are clipped to ± this many sd (0: not at all)."""
        self.kind, self.prior, self.genuine_rate = kind, prior, genuine_rate
        self.labels_seen = self.frauds_seen = 0
        self._rng = random.Random(seed)
        self._coefficients: Coefficients | None = None
        self.stats = preprocessing.StandardScaler()
        """Running mean and variance of each feature: the linear kind's scaler; for forests,
        kept beside them for the reasons (what a feature's usual value is)."""
        self.river: compose.Pipeline | forest.ARFClassifier | forest.AMFClassifier
        if kind == "linear":
            # Start at the prior, in the odds of the sampled stream, so a fresh model approves.
            intercept = math.log(prior / (1 - prior)) - math.log(genuine_rate)
            lin = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2, intercept_init=intercept)
            clip = compose.FuncTransformer(partial(clip_standardised, limit=self.clip_sd))
            self.river = compose.Pipeline(self.stats, clip, lin)
        elif kind == "arf":
            self.river = forest.ARFClassifier(n_models=n_models, seed=seed)
        else:
            self.river = forest.AMFClassifier(n_estimators=n_models, seed=seed)

    @property
    def feature_names(self) -> list[str]:
        return sorted(self.stats.counts)

    def clone(self) -> FraudModel:
        """A fresh, untrained model with the same parameters (a challenger)."""
        return FraudModel(**self.params)

    # --- learning: changes state

    def learn(self, x: dict[str, float], y: bool, weight: float = 1.0) -> None:
        x, y = {k: v for k, v in x.items() if -LIMIT <= v <= LIMIT}, bool(y)  # NaN fails too
        self.labels_seen += 1
        self.frauds_seen += y
        if isinstance(self.river, compose.Pipeline):  # the linear kind: it takes the weight itself
            self._coefficients = None
            self.river.learn_one(x, y, w=weight)
            return
        self.stats.learn_one(x)
        # Forests take no sample weight: learn floor(w) times, once more with prob frac(w).
        repeats = int(weight) + (self._rng.random() < weight - int(weight))
        for _ in range(repeats):
            self.river.learn_one(x, y)

    def learn_many(
        self, xs: list[dict[str, float]], ys: list[bool], weights: list[float] | None = None
    ) -> None:
        """Learn one by one. River's ``learn_many`` costs a fifth of the CPU per label but
        takes one mean-gradient step per batch: on simulated traffic, batches of 500 cut
        second-half average precision from 0.25 to 0.03. Labels are few enough to afford it."""
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            self.learn(x, y, 1.0 if weights is None else weights[i])

    # --- scoring: never changes state

    def coefficients(self) -> Coefficients:
        """The linear kind read out once after learning (River's own ``predict_proba_one``
        writes each unseen feature name into the scaler: a state change, and a leak)."""
        if not isinstance(self.river, compose.Pipeline):  # only the linear kind is a pipeline
            raise TypeError(f"a {self.kind} model has no coefficients")
        if self._coefficients is None:
            lin = self.river["LogisticRegression"]
            self._coefficients = Coefficients(lin.intercept + math.log(self.genuine_rate), self.stats, lin.weights,
                                              self.clip_sd)
        return self._coefficients

    def score(self, x: dict[str, float]) -> float:
        """Probability of fraud in [0, 1]."""
        if self.kind == "linear":
            return sigmoid(self.coefficients().logit(x))
        x = {k: min(max(v, -LIMIT), LIMIT) for k, v in x.items() if v == v}  # forests overflow
        p = self.river.predict_proba_one(x).get(True)
        if p is None:
            return self.prior
        odds = self.genuine_rate * p
        return odds / (odds + 1.0 - p)

    def score_many(self, xs: list[dict[str, float]]) -> list[float]:
        """Scores of a batch; for the linear kind one numpy pass, ~3× cheaper than ``score``
        per event, equal to it within 1e-15, and the same whatever else is in the batch."""
        if self.kind == "linear":
            return self.coefficients().probabilities(xs)
        return [self.score(x) for x in xs]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_coefficients"] = None  # a cache, not state: keep pickles identical
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("clip_sd", CLIP_SD)  # artifacts pickled before the clip was a parameter
        self.__dict__.update(state)
