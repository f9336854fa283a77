"""The batch model kind (``hgb``): a scikit-learn HistGradientBoosting classifier fitted at
once on a labelled window, beside the online model line it was fitted from.

Same scoring contract as :class:`FraudModel` (``score``, ``score_many``, ``feature_names``,
``kind``, ``stats`` for the reasons; pickled whole by ``artifacts.dump`` with its sha256), so
scoring loads and serves it like any version. ``score_many`` is one vectorised
``predict_proba`` over the batch's matrix (columns: the features it was fitted on; a missing
or NaN value is NaN, which the trees route as they learned; ±inf and absurd values are
clipped to ±``LIMIT``).

What ``learn`` means for it: the trees learn only at refit (``fit``). Between refits the
learner keeps improving the online line it carries (``online``): each label is learned by
that model, which stays the fallback (a retrain request's ``clone`` is a fresh online model)
and the base of the next refit's challenger. Its score is not blended into the batch one:
the blend could only be judged on the online line's own live scores, which the learner's
window does not keep once a batch model is champion.

Fitting and scoring run on one OpenMP thread (``one_thread``): a pipeline service is one
process on one core, and scikit-learn's default of a thread per core, beside the other
services on the same cores, spins and waits. On 2 shared cores at load 15–18 (medians of 5
batches of 500 simulated transactions × 28 features), one thread scored in 5–34 µs a
transaction against 151–2,983 µs, and fitted 5,000 labels in 0.8–5 s against 40–66 s; a
single-row prediction took 3 ms against 300 ms. ``python -m fraudstream.bench.batch_model``
prints both.

Fitting weights each example (1 / genuine sampling rate for a kept genuine label), so the
probabilities are those of the full stream, without the online kind's prior correction.

>>> import random
>>> rng = random.Random(1)
>>> xs = [{"hour": float(rng.randrange(24)), "amount": rng.uniform(1, 100)} for _ in range(400)]
>>> ys = [14 <= x["hour"] < 18 for x in xs]   # a band: no single linear slope ranks it
>>> model = fit(xs, ys, [1.0] * len(xs), FraudModel(), trees=20)
>>> model.kind, model.feature_names
('hgb', ['amount', 'hour'])
>>> [round(p, 2) for p in model.score_many([{"hour": 15.0, "amount": 50.0}, {"hour": 20.0, "amount": 50.0}])]
[0.9, 0.02]
>>> model.learn({"hour": 3.0, "amount": 9.0}, False)   # the online line learns; the trees do not
>>> model.labels_seen, model.fitted_labels
(1, 400)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from services.model.fraud_model import LIMIT, Coefficients, FraudModel

if TYPE_CHECKING:  # imported where fitted: scikit-learn takes a second to import
    from sklearn.ensemble import HistGradientBoostingClassifier

KIND = "hgb"


@cache
def _controller():
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the controller must see)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_thread() -> AbstractContextManager:
    """scikit-learn's OpenMP limited to one thread while in the block (~45 µs to enter)."""
    return _controller().limit(limits=1, user_api="openmp")


@dataclass
class Usual:
    """Weighted mean and variance of each feature in the fitted window: a feature's usual
    value, for the reasons (the same role as ``FraudModel.stats``)."""

    means: dict[str, float] = field(default_factory=dict)
    vars: dict[str, float] = field(default_factory=dict)


class BatchModel:
    """Fitted trees plus the online line they were fitted beside; pickles whole."""

    kind = KIND

    def __init__(self, estimator: HistGradientBoostingClassifier, names: Sequence[str], online: FraudModel,
                 usual: Usual, fitted_labels: int, fitted_frauds: int):
        self.estimator = estimator
        self.names = tuple(names)
        self.online = online
        """The online model line: learns each label between refits (the fallback)."""
        self.stats = usual
        self.fitted_labels, self.fitted_frauds = fitted_labels, fitted_frauds
        self._fraud_column = list(estimator.classes_).index(True)
        self._values = itemgetter(*self.names) if len(self.names) > 1 else lambda x: (x[self.names[0]],)

    @property
    def feature_names(self) -> list[str]:
        return list(self.names)

    @property
    def labels_seen(self) -> int:
        """Labels the line has learned (the online part's count: it goes on between refits)."""
        return self.online.labels_seen

    @property
    def frauds_seen(self) -> int:
        return self.online.frauds_seen

    def learn(self, x: dict[str, float], y: bool, weight: float = 1.0) -> None:
        """The online line learns the label; the trees learn only at refit."""
        self.online.learn(x, y, weight)

    def clone(self) -> FraudModel:
        """A fresh online model (what a retrain request trains): the trees are refit on schedule."""
        return self.online.clone()

    def coefficients(self) -> Coefficients:
        """Like a forest kind's: trees have no coefficients."""
        raise TypeError(f"a {self.kind} model has no coefficients")

    def matrix(self, xs: list[dict[str, float]]) -> np.ndarray:
        X = np.array([self._row(x) for x in xs], dtype=float).reshape(len(xs), len(self.names))
        return np.clip(X, -LIMIT, LIMIT)  # NaN stays NaN: the trees send it where they learned to

    def score_many(self, xs: list[dict[str, float]]) -> list[float]:
        """Probabilities of fraud for a batch: one ``predict_proba``."""
        if not xs:
            return []
        X = self.matrix(xs)
        with one_thread():
            return self.estimator.predict_proba(X)[:, self._fraud_column].tolist()

    def score(self, x: dict[str, float]) -> float:
        return self.score_many([x])[0]

    def _row(self, x: dict[str, float]) -> Sequence[float]:
        try:
            return self._values(x)
        except KeyError:  # a feature is missing: NaN
            return [x.get(f, np.nan) for f in self.names]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_values"]  # a closure: rebuilt on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        names = self.names
        self._values = itemgetter(*names) if len(names) > 1 else lambda x: (x[names[0]],)


def fit(xs: list[dict[str, float]], ys: list[bool], weights: list[float], online: FraudModel, *,
        trees: int = 100, seed: int = 42) -> BatchModel:
    """Fit the trees on a labelled window (features as stored, each with its weight); the
    columns are every feature name seen, in sorted order. Deterministic for a given window."""

    names = sorted({name for x in xs for name in x})
    X = np.array([[x.get(f, np.nan) for f in names] for x in xs], dtype=float)
    return fit_matrix(X, np.array(ys, dtype=bool), np.array(weights, dtype=float), names, online,
                      trees=trees, seed=seed)


def fit_matrix(X: np.ndarray, y: np.ndarray, w: np.ndarray, names: Sequence[str], online: FraudModel, *,
               trees: int = 100, seed: int = 42) -> BatchModel:
    """``fit`` on a matrix whose columns are ``names`` (the learner's compact batch window)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = np.clip(X, -LIMIT, LIMIT)
    estimator = HistGradientBoostingClassifier(max_iter=trees, learning_rate=0.1, max_leaf_nodes=31,
                                               early_stopping=False, random_state=seed)
    with one_thread():
        estimator.fit(X, y, sample_weight=w)
    return BatchModel(estimator, names, online, usual(list(names), X, w), len(y), int(y.sum()))


def usual(names: list[str], X: np.ndarray, w: np.ndarray) -> Usual:
    """Weighted mean and variance of each column, over its finite values."""
    out = Usual()
    for j, name in enumerate(names):
        ok = np.isfinite(X[:, j])
        if not ok.any():
            continue
        mean = float(np.average(X[ok, j], weights=w[ok]))
        out.means[name] = mean
        out.vars[name] = float(np.average((X[ok, j] - mean) ** 2, weights=w[ok]))
    return out


Model = FraudModel | BatchModel
"""Any model version: what an artifact holds, what scoring serves and the learner trains."""
