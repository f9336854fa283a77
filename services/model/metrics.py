"""Prequential metrics (score each event before learning from it) over a bounded window.

Everything is computed exactly over the last ``window`` labelled events, in pure Python. River's
``ROCAUC`` was not used: it bins scores on 10 fixed thresholds, and calibrated fraud scores
almost all fall below the first one, so its estimate is wrong exactly where it matters.

>>> tracker = Prequential(threshold=0.8)
>>> for score, y in [(0.1, False), (0.4, False), (0.35, True), (0.9, True)]:
...     tracker.update(score, y)
>>> {k: round(v, 3) for k, v in tracker.as_dict().items()}  # doctest: +NORMALIZE_WHITESPACE
{'labels': 4.0, 'frauds': 2.0, 'window': 4.0, 'alert_rate': 0.25, 'log_loss': 0.443,
 'average_precision': 0.833, 'roc_auc': 0.75, 'precision': 1.0, 'recall': 0.5}
"""

from __future__ import annotations

import math
from collections import deque
from itertools import groupby

Scored = tuple[float, bool, float]
"""(score, is_fraud, weight)"""


def _groups(pairs: list[Scored], descending: bool):
    """Runs of equal scores, so tied scores count as one threshold."""
    ordered = sorted(pairs, key=lambda p: p[0], reverse=descending)
    for _, tied in groupby(ordered, key=lambda p: p[0]):
        run = list(tied)
        yield sum(w for _, y, w in run if y), sum(w for _, y, w in run if not y)


def average_precision(pairs: list[Scored]) -> float:
    """Σ over thresholds of (recall gained) × precision, as scikit-learn computes it.

    >>> average_precision([(0.1, False, 1.0), (0.4, False, 1.0), (0.35, True, 1.0), (0.8, True, 1.0)])
    0.8333333333333333
    """
    positives = sum(w for _, y, w in pairs if y)
    if not positives:
        return math.nan
    ap = tp = fp = 0.0
    for pos, neg in _groups(pairs, descending=True):
        tp, fp = tp + pos, fp + neg
        ap += pos / positives * tp / (tp + fp)
    return ap


def roc_auc(pairs: list[Scored]) -> float:
    """Probability that a fraud outscores a genuine transaction (ties count half).

    >>> roc_auc([(0.1, False, 1.0), (0.4, False, 1.0), (0.35, True, 1.0), (0.8, True, 1.0)])
    0.75
    """
    positives = sum(w for _, y, w in pairs if y)
    negatives = sum(w for _, y, w in pairs if not y)
    if not positives or not negatives:
        return math.nan
    area = negatives_below = 0.0
    for pos, neg in _groups(pairs, descending=False):
        area += pos * (negatives_below + neg / 2)
        negatives_below += neg
    return area / (positives * negatives)


DAY_S = 86_400.0


def card_precision_at_k(rows: list[tuple[float, bool, str, float]], k: int) -> float:
    """Card precision@k: each UTC day, the ``k`` cards with the highest score that day (a card
    scores its highest transaction's score and is fraudulent if any of its transactions that
    day is), and the share of them that are fraudulent; the mean over the days. A day with
    fewer than ``k`` cards takes them all. ``rows``: (score, is_fraud, card_id, ts epoch s).
    Ties rank by card id, so the value never depends on the rows' order.

    What an analyst team with ``k`` card checks a day finds: a card alerted twice is one check.

    >>> day2 = 86_400.0
    >>> rows = [(0.9, False, "a", 10.0), (0.8, True, "a", 20.0), (0.7, False, "b", 30.0),
    ...         (0.6, True, "c", 40.0), (0.1, True, "d", 50.0),
    ...         (0.5, True, "a", day2), (0.4, False, "b", day2)]
    >>> card_precision_at_k(rows, 2)   # day 1: a (fraud), b → 1/2; day 2: a, b → 1/2
    0.5
    >>> card_precision_at_k(rows, 3)   # day 1: a, b, c → 2/3; day 2: both cards → 1/2
    0.5833333333333333
    """
    if not rows:
        return math.nan
    days: dict[int, dict[str, tuple[float, bool]]] = {}
    for score, y, card, ts in rows:
        cards = days.setdefault(int(ts // DAY_S), {})
        top, fraud = cards.get(card, (-math.inf, False))
        cards[card] = (max(top, score), fraud or bool(y))
    shares = []
    for cards in days.values():
        ranked = sorted(cards.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        shares.append(sum(fraud for _, (_, fraud) in ranked) / len(ranked))
    return sum(shares) / len(shares)


class Prequential:
    """Tracks how a model scored events whose labels arrived later.

    ``weight`` undoes sampling: a genuine label kept at rate 0.2 counts 5 times.
    """

    def __init__(self, threshold: float = 0.8, window: int = 10_000) -> None:
        self.threshold = threshold
        self.recent: deque[Scored] = deque(maxlen=window)
        self.labels = self.frauds = 0

    def update(self, score: float, y: bool, weight: float = 1.0) -> None:
        self.recent.append((score, bool(y), weight))
        self.labels += 1
        self.frauds += bool(y)

    def as_dict(self) -> dict[str, float]:
        """Metrics for a ModelVersion event; a metric that is undefined yet is left out."""
        pairs = list(self.recent)
        total = sum(w for _, _, w in pairs)
        alerted = [(y, w) for s, y, w in pairs if s >= self.threshold]
        tp = sum(w for y, w in alerted if y)
        positives = sum(w for _, y, w in pairs if y)
        out = {"labels": float(self.labels), "frauds": float(self.frauds), "window": float(len(pairs))}
        if total:
            out["alert_rate"] = sum(w for _, w in alerted) / total
            out["log_loss"] = sum(w * _log_loss(s, y) for s, y, w in pairs) / total
        out["average_precision"] = average_precision(pairs)
        out["roc_auc"] = roc_auc(pairs)
        out["precision"] = tp / sum(w for _, w in alerted) if alerted else math.nan
        out["recall"] = tp / positives if positives else math.nan
        return {k: v for k, v in out.items() if not math.isnan(v)}


def _log_loss(score: float, y: bool) -> float:
    p = min(max(score, 1e-15), 1 - 1e-15)
    return -math.log(p if y else 1 - p)
