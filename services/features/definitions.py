"""Every feature, defined once: a table of (name, entity, aggregation, window).

The store's Lua scripts, the plain-Python reference and the feature-set version all read
this table, so adding a feature is one entry here (plus a test) and the version changes.

Event time throughout: a transaction's features are computed from what was applied before
it with a strictly earlier ``ts``; card windows are the half-open ``(ts - W, ts)``. Merchant
windows count whole UTC hours, ``[hour(ts) - W, hour(ts))``, because merchants are kept
as hourly counts (see store.py). Labels arrive late: only what was known counts, each
transaction's once, from its earliest label (any verdict) and, as a fraud, from its earliest
fraud label; the fraud rate's frauds when ``ts - W < labelled_at <= ts``, the label shares'
labels and frauds by the whole hours they became known in, ``[hour(ts) - W, hour(ts))``.
If you change what an aggregation computes, rename it, so the version changes too.

>>> FEATURES_BY_NAME["card_amount_mean_24h"]
Feature(name='card_amount_mean_24h', entity='card', aggregation='mean', window_s=86400)
>>> len(FEATURE_SET_VERSION)
12
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson

from shared.events import Transaction

HOUR, DAY = 3600, 86400
AGE_CAP_S = 30 * DAY
"""Stands for "no history in the last 30 days": `card_seconds_since_prev` and freshness."""
MIN_MEAN_AMOUNT = 0.01
"""The ratio's denominator floor, one cent: a card whose history is zero-amount checks (card
testing) gets a large, finite ratio for its first real amount instead of a division by zero."""
UNKNOWN_TX = "unknown or expired tx_id (no stored feature vector for this card)"
"""Why a label was not applied."""
NIGHT_HOURS = range(0, 6)
"""UTC hours counted as night (the card holder's local time is not known)."""

Entity = Literal["card", "merchant", "tx"]

CARD_AGGREGATIONS = {
    "count": "the card's transactions in the window",
    "sum": "their amounts added up",
    "mean": "their mean amount; 0 without history",
    "ratio": "this amount over their mean amount (at least MIN_MEAN_AMOUNT); 1 without history",
    "zscore": "(this amount - their mean) / their sample std; 0 with under 2 of them or no spread",
    # sums and spreads are exact, rounded once, so a running window and a rescan agree
    # to the bit whatever the order of adding and subtracting
    "seconds_since_prev": "ts minus the newest earlier ts; the window itself when there is none",
    "distinct_merchants": "how many merchants they went to",
    "merchant_is_new": "1 if the card never used this merchant before ts (no window)",
    "country_changed": "1 if the newest of them was in another country; 0 when none",
    "channel_changed": "1 if the newest of them used another channel; 0 when none",
}
"""What each card aggregation means; card.lua and reference.py compute each one."""
MERCHANT_AGGREGATIONS = {
    "count": "the merchant's transactions in the whole UTC hours [hour(ts) - W, hour(ts))",
    "fraud_rate": "fraud labels with ts - W < labelled_at <= ts, over that count; 0 when it is 0",
    # the labels known now are mostly of transactions days old, not of the last W's traffic:
    # a share over labels compares the same transactions whatever the label delay
    "fraud_share": "fraud labels known in the hours [hour(ts) - W, hour(ts)), over all labels known then; 0 without",
    "label_count": "labels (fraud or genuine) known in the hours [hour(ts) - W, hour(ts))",
}
"""What each merchant aggregation means; merchant.lua and reference.py compute each one."""
LABEL_AGGREGATIONS = frozenset({"fraud_rate", "fraud_share", "label_count"})
"""The merchant aggregations that read labels. Labels come on their own topic, so what such a
feature counts also depends on whether a label was read before the transaction: two runs of
the services on one stream can differ on them where the stream is compressed in time (a
label of an earlier hour sent just before a transaction), never on the others."""
TX_AGGREGATIONS: dict[str, Callable[[Transaction], float]] = {
    "amount": lambda tx: tx.amount,
    "log1p_amount": lambda tx: math.log1p(tx.amount),
    "hour_of_day": lambda tx: float(tx.ts.astimezone(UTC).hour),
    "is_weekend": lambda tx: float(tx.ts.astimezone(UTC).weekday() >= 5),
    "is_night": lambda tx: float(tx.ts.astimezone(UTC).hour in NIGHT_HOURS),
}


@dataclass(frozen=True)
class Feature:
    name: str
    entity: Entity
    aggregation: str
    window_s: int = 0
    """Look-back in event-time seconds; 0 for none."""


def _windowed(entity: Entity, stem: str, aggregation: str, windows: dict[str, int]) -> list[Feature]:
    return [Feature(f"{entity}_{stem}_{label}", entity, aggregation, s) for label, s in windows.items()]


CARD_WINDOWS = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}

FEATURES: tuple[Feature, ...] = (
    *_windowed("card", "tx_count", "count", CARD_WINDOWS),
    *_windowed("card", "amount_sum", "sum", CARD_WINDOWS),
    *_windowed("card", "amount_mean", "mean", CARD_WINDOWS),
    Feature("card_amount_ratio_30d", "card", "ratio", 30 * DAY),
    Feature("card_amount_zscore_30d", "card", "zscore", 30 * DAY),
    Feature("card_seconds_since_prev", "card", "seconds_since_prev", AGE_CAP_S),
    Feature("card_distinct_merchants_24h", "card", "distinct_merchants", DAY),
    Feature("card_merchant_is_new", "card", "merchant_is_new"),
    Feature("card_country_changed", "card", "country_changed", AGE_CAP_S),
    Feature("card_channel_changed", "card", "channel_changed", AGE_CAP_S),
    *_windowed("merchant", "tx_count", "count", {"24h": DAY, "7d": 7 * DAY}),
    *_windowed("merchant", "fraud_rate", "fraud_rate", {"7d": 7 * DAY, "30d": 30 * DAY}),
    *_windowed("merchant", "fraud_share", "fraud_share", {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}),
    *_windowed("merchant", "labels", "label_count", {"7d": 7 * DAY, "30d": 30 * DAY}),
    Feature("amount", "tx", "amount"),
    Feature("log_amount", "tx", "log1p_amount"),
    Feature("hour_of_day", "tx", "hour_of_day"),
    Feature("is_weekend", "tx", "is_weekend"),
    Feature("is_night", "tx", "is_night"),
)


def version_of(features: tuple[Feature, ...]) -> str:
    """A short, stable digest of a feature table: any change to it changes the version.

    >>> version_of(FEATURES) == version_of(FEATURES + (Feature("x", "tx", "amount"),))
    False
    """
    rows = [[f.name, f.entity, f.aggregation, f.window_s] for f in features]
    # the constants some aggregations read are part of what the numbers mean
    return hashlib.sha256(orjson.dumps([rows, AGE_CAP_S, MIN_MEAN_AMOUNT, list(NIGHT_HOURS)])).hexdigest()[:12]


def _check(features: tuple[Feature, ...]) -> None:
    known = {"card": CARD_AGGREGATIONS, "merchant": MERCHANT_AGGREGATIONS, "tx": set(TX_AGGREGATIONS)}
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError("feature names must be unique")
    for f in features:
        if f.aggregation not in known[f.entity]:
            raise ValueError(f"{f.name}: no {f.entity} aggregation {f.aggregation!r}")
        if f.entity == "merchant" and (f.window_s <= 0 or f.window_s % HOUR):
            raise ValueError(f"{f.name}: merchant windows are whole hours")


_check(FEATURES)
FEATURE_SET_VERSION = version_of(FEATURES)
FEATURES_BY_NAME = {f.name: f for f in FEATURES}
FEATURE_NAMES = tuple(FEATURES_BY_NAME)


@dataclass(frozen=True)
class Layout:
    """Which names a stored vector's two parts hold, in order (what a version means)."""

    card: tuple[str, ...]
    """The card script's part: card features, then transaction features."""
    merchant: tuple[str, ...]


def by_entity(entity: Entity, features: tuple[Feature, ...] = FEATURES) -> tuple[Feature, ...]:
    return tuple(f for f in features if f.entity == entity)


_TX_FEATURES = tuple((f.name, TX_AGGREGATIONS[f.aggregation]) for f in by_entity("tx"))
LAYOUT = Layout(
    card=tuple(f.name for f in by_entity("card") + by_entity("tx")),
    merchant=tuple(f.name for f in by_entity("merchant")),
)


def transaction_features(tx: Transaction) -> dict[str, float]:
    """The features of the transaction alone (no history); UTC calendar.

    >>> tx = Transaction(tx_id="t", ts="2026-01-03T04:30:00Z", card_id="c", merchant_id="m",
    ...                  amount=99.0, currency="EUR", channel="pos", mcc="5411", country="FR")
    >>> transaction_features(tx)
    {'amount': 99.0, 'log_amount': 4.605170185988092, 'hour_of_day': 4.0, 'is_weekend': 1.0, 'is_night': 1.0}
    """
    return {name: aggregate(tx) for name, aggregate in _TX_FEATURES}


def epoch_s(ts: datetime | float) -> float:
    """Event time as epoch seconds, the unit every window and score uses.

    >>> epoch_s(datetime(1970, 1, 1, 1, tzinfo=UTC)), epoch_s(12.5)
    (3600.0, 12.5)
    """
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def hour_of(ts: float) -> int:
    """The UTC hour bucket a merchant transaction is counted in.

    >>> hour_of(7199.9), hour_of(7200.0)
    (1, 2)
    """
    return math.floor(ts / HOUR)


def history_member(tx: Transaction) -> str:
    """How a card's transaction is kept in its history ZSET; among earlier transactions
    with the same ``ts``, the greatest member is "previous" (the reference orders by it too).

    The amount leads, so the script reads it with one match; the merchant id carries its
    UTF-8 length and the tx id comes last, so both may hold any character.

    >>> tx = Transaction(tx_id="t|1", ts="2026-01-03T04:30:00Z", card_id="c", merchant_id="m|9",
    ...                  amount=9.5, currency="EUR", channel="pos", mcc="5411", country="FR")
    >>> history_member(tx)
    '9.5|FR|pos|3|m|9|t|1'
    """
    merchant = tx.merchant_id
    return f"{tx.amount!r}|{tx.country}|{tx.channel}|{len(merchant.encode())}|{merchant}|{tx.tx_id}"


class Watermark:
    """The newest event time of one entity (a card), and what is too late behind it.

    >>> w = Watermark(max_lateness_s=3600)
    >>> w.observe(10_000.0); w.is_too_late(6_400.0), w.is_too_late(6_399.0)
    (False, True)
    """

    def __init__(self, max_lateness_s: float):
        self.max_lateness_s = max_lateness_s
        self.newest = -math.inf

    def observe(self, ts: datetime | float) -> None:
        self.newest = max(self.newest, epoch_s(ts))

    def is_too_late(self, ts: datetime | float) -> bool:
        return epoch_s(ts) < self.newest - self.max_lateness_s

    def reason(self, ts: datetime | float) -> str:
        return too_late(self.newest - epoch_s(ts), self.max_lateness_s)


def too_late(behind_s: float, max_lateness_s: float) -> str:
    """Why a transaction was refused: the store and the reference word it alike."""
    return f"too late: {behind_s:.0f}s behind the card's newest event, limit {max_lateness_s:.0f}s"


@dataclass(frozen=True)
class Refused:
    """A transaction not applied, and why (it is dead-lettered with this reason)."""

    reason: str


@dataclass(frozen=True)
class FeatureResult:
    """One transaction's point-in-time features, and how old the state behind them was."""

    features: dict[str, float]
    freshness_s: dict[str, float]
    """``card`` / ``merchant`` → ``ts`` minus the newest earlier ts used, capped at AGE_CAP_S."""
    feature_set_version: str = FEATURE_SET_VERSION
    """The version the features were computed with: an older one for a transaction first
    applied before a deployment changed the table and delivered again after it."""
