"""The feature definitions computed the slow, obvious way: plain lists, whole history.

The yardstick for the Redis store (tests compare the two on the same stream) and a
feature source for offline evaluation. Same contract as the store: features come from the
state before the transaction, and applying a transaction twice changes nothing.

>>> ref = ReferenceFeatures()
>>> tx = Transaction(tx_id="t1", ts="2026-01-05T10:00:00Z", card_id="c1", merchant_id="m1",
...                  amount=20.0, currency="EUR", channel="pos", mcc="5411", country="FR")
>>> first = ref.apply(tx)
>>> first.features["card_tx_count_24h"], first.features["card_merchant_is_new"], first.freshness_s
(0.0, 1.0, {'card': 2592000.0, 'merchant': 2592000.0})
>>> ref.apply(tx) == first
True
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from services.features.definitions import (
    AGE_CAP_S,
    FEATURE_NAMES,
    HOUR,
    MIN_MEAN_AMOUNT,
    UNKNOWN_TX,
    FeatureResult,
    Refused,
    Watermark,
    by_entity,
    epoch_s,
    history_member,
    hour_of,
    transaction_features,
)  # fmt: skip
from shared.events import Label, Transaction


@dataclass(frozen=True, order=True)
class _Past:
    """One earlier transaction of a card, ordered like the store's history ZSET."""

    ts: float
    member: str
    amount: float
    merchant: str
    country: str
    channel: str


def _card_feature(
    aggregation: str, w: int, tx: Transaction, ts: float, rows: list[_Past], first_seen: float | None
) -> float:
    inside = [r for r in rows if ts - w < r.ts < ts]
    amounts = [r.amount for r in inside]
    previous = inside[-1] if inside else None
    # the exact sum rounded once: what the store's running sums give, in any order
    n, total = len(amounts), math.fsum(amounts)
    if aggregation == "count":
        return float(n)
    if aggregation == "sum":
        return total
    if aggregation == "mean":
        return total / n if n else 0.0
    if aggregation == "ratio":
        return tx.amount / max(total / n, MIN_MEAN_AMOUNT) if n else 1.0
    if aggregation == "zscore":
        if n < 2:
            return 0.0
        mean = total / n
        exact = [Fraction(a) for a in amounts]
        spread = float(n * sum(a * a for a in exact) - sum(exact) ** 2)  # n(n-1) sample variances
        std = math.sqrt(spread / (n * (n - 1)))
        return 0.0 if std <= 1e-9 * mean else (tx.amount - mean) / std
    if aggregation == "seconds_since_prev":
        return ts - previous.ts if previous else float(w)
    if aggregation == "distinct_merchants":
        return float(len({r.merchant for r in inside}))
    if aggregation == "merchant_is_new":
        return 0.0 if first_seen is not None and first_seen < ts else 1.0
    if aggregation == "country_changed":
        return float(previous is not None and previous.country != tx.country)
    if aggregation == "channel_changed":
        return float(previous is not None and previous.channel != tx.channel)
    raise ValueError(f"no card aggregation {aggregation!r}")


def _merchant_feature(aggregation: str, w: int, ts: float, tx_times: list[float], frauds: dict[str, float],
                      labels: dict[str, float]) -> float:
    hour = hour_of(ts)
    n = sum(1 for t in tx_times if hour - w // HOUR <= hour_of(t) < hour)
    if aggregation == "count":
        return float(n)
    if aggregation == "fraud_rate":
        known = sum(1 for labelled_at in frauds.values() if ts - w < labelled_at <= ts)
        return known / n if n else 0.0
    # labels by the whole hours they became known in, as the transactions are counted
    known_frauds = sum(1 for labelled_at in frauds.values() if hour - w // HOUR <= hour_of(labelled_at) < hour)
    known_labels = sum(1 for labelled_at in labels.values() if hour - w // HOUR <= hour_of(labelled_at) < hour)
    if aggregation == "fraud_share":
        return known_frauds / known_labels if known_labels else 0.0
    if aggregation == "label_count":
        return float(known_labels)
    raise ValueError(f"no merchant aggregation {aggregation!r}")


def _age(ts: float, earlier: list[float]) -> float:
    return float(min(ts - max(earlier), AGE_CAP_S)) if earlier else float(AGE_CAP_S)


class ReferenceFeatures:
    """``max_lateness_s``, when given, refuses a transaction that far behind its card's
    newest one, as the store does; without it every transaction is applied."""

    def __init__(self, max_lateness_s: float | None = None) -> None:
        self.max_lateness_s = max_lateness_s
        self.newest: dict[str, Watermark] = {}
        self.history: dict[str, list[_Past]] = defaultdict(list)
        self.first_seen: dict[tuple[str, str], float] = {}
        self.merchant_times: dict[str, list[float]] = defaultdict(list)
        self.frauds: dict[str, dict[str, float]] = defaultdict(dict)
        """merchant → tx_id → earliest labelled_at of a fraud label"""
        self.labels: dict[str, dict[str, float]] = defaultdict(dict)
        """merchant → tx_id → earliest labelled_at of any label"""
        self.applied: dict[tuple[str, str], tuple[FeatureResult, str]] = {}

    def apply(self, tx: Transaction) -> FeatureResult | Refused:
        """Features from everything applied before with an earlier ts; then record ``tx``."""
        if (tx.card_id, tx.tx_id) in self.applied:
            return self.applied[tx.card_id, tx.tx_id][0]
        if self.max_lateness_s is not None:
            card = self.newest.setdefault(tx.card_id, Watermark(self.max_lateness_s))
            if card.is_too_late(tx.ts):
                return Refused(card.reason(tx.ts))
            card.observe(tx.ts)
        ts = epoch_s(tx.ts)
        rows = self.history[tx.card_id]
        first_seen = self.first_seen.get((tx.card_id, tx.merchant_id))
        times, frauds, labels = (self.merchant_times[tx.merchant_id], self.frauds[tx.merchant_id],
                                 self.labels[tx.merchant_id])  # fmt: skip
        values = transaction_features(tx)
        for f in by_entity("card"):
            values[f.name] = _card_feature(f.aggregation, f.window_s, tx, ts, rows, first_seen)
        for f in by_entity("merchant"):
            values[f.name] = _merchant_feature(f.aggregation, f.window_s, ts, times, frauds, labels)
        result = FeatureResult(
            features={name: values[name] for name in FEATURE_NAMES},
            freshness_s={
                "card": _age(ts, [r.ts for r in rows if r.ts < ts]),
                "merchant": _age(ts, [t for t in times if hour_of(t) < hour_of(ts)]),
            },
        )
        bisect.insort(rows, _Past(ts, history_member(tx), tx.amount, tx.merchant_id, tx.country, tx.channel))
        self.first_seen[tx.card_id, tx.merchant_id] = min(ts, first_seen if first_seen is not None else ts)
        times.append(ts)
        self.applied[tx.card_id, tx.tx_id] = (result, tx.merchant_id)
        return result

    def apply_label(self, label: Label) -> str | None:
        """A label becomes known to its merchant at its transaction's earliest ``labelled_at``;
        a fraud label counts as a fraud from the earliest fraud label."""
        known = self.applied.get((label.card_id, label.tx_id))
        if known is None:
            return UNKNOWN_TX
        at = epoch_s(label.labelled_at)
        for kept in (self.labels[known[1]], self.frauds[known[1]]) if label.is_fraud else (self.labels[known[1]],):
            kept[label.tx_id] = min(at, kept.get(label.tx_id, math.inf))
        return None
