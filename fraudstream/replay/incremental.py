"""The feature definitions at constant cost per event, for ``fraudstream evaluate``.

Each transaction is added to a window once and subtracted once when it leaves it (the
store's plan in DESIGN.md, in plain Python), so a 1.75 M-row file costs seconds instead of
the reference's whole-history scans. Same names and meanings as
:mod:`services.features.reference`; ``tests/unit/test_incremental.py`` holds the two equal
(1e-9 relative: running sums round differently from the reference's oldest-first loop).

Transactions must come in nondecreasing ``ts`` (evaluate refuses a late one); labels as they
become known. Two deliberate extensions, both off unless asked:

- ``amount`` may be 0 (card testing): ``card_amount_ratio_30d`` divides by the mean amount
  floored at one cent, where the reference would divide by zero;
- ``label_shares=True`` adds ``merchant_fraud_share_{1d,7d,30d}`` and
  ``merchant_labels_{7d,30d}``: frauds over *labels* that became known at the merchant in
  ``(ts - W, ts]``. Numerator and denominator then cover the same transactions whatever the
  label delay; ``merchant_fraud_rate_*`` divides the frauds known now by the traffic of the
  last W, which under a 7-day delay are mostly different transactions.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import Counter, deque

from services.features.definitions import AGE_CAP_S, DAY, HOUR, by_entity

CENT = 0.01
SHARE_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
LABEL_COUNT_WINDOWS = ("7d", "30d")
EXTRA_FEATURES = tuple(f"merchant_fraud_share_{w}" for w in SHARE_WINDOWS) + tuple(
    f"merchant_labels_{w}" for w in LABEL_COUNT_WINDOWS)

_CARD = tuple((f.name, f.aggregation, f.window_s or AGE_CAP_S) for f in by_entity("card"))
_WINDOWS = tuple(sorted({w for _, _, w in _CARD}))
_W = {w: i for i, w in enumerate(_WINDOWS)}
_DISTINCT = tuple(sorted({w for _, a, w in _CARD if a == "distinct_merchants"}))
_MERCHANT_COUNTS = tuple((f.name, f.window_s) for f in by_entity("merchant") if f.aggregation == "count")
_MERCHANT_RATES = tuple((f.name, f.window_s) for f in by_entity("merchant") if f.aggregation == "fraud_rate")
_HOURLY = tuple(sorted({w for _, w in _MERCHANT_COUNTS + _MERCHANT_RATES}))
"""Every window a merchant's transaction count is kept for (counts, and rates' denominators)."""
_H = {w: i for i, w in enumerate(_HOURLY)}
_TRIM = 512


class _Card:
    __slots__ = ("rows", "end", "lo", "n", "total", "merchants")

    def __init__(self) -> None:
        self.rows: list[tuple] = []  # (ts, member, amount, merchant, country, channel), ordered as the ZSET
        self.end = 0  # rows[:end] are strictly earlier than the last ts seen, and counted
        self.lo = [0] * len(_WINDOWS)
        self.n = [0] * len(_WINDOWS)
        self.total = [0.0] * len(_WINDOWS)
        self.merchants = {w: Counter() for w in _DISTINCT}

    def advance(self, ts: float) -> None:
        rows, n, total = self.rows, self.n, self.total
        while self.end < len(rows) and rows[self.end][0] < ts:
            row = rows[self.end]
            for i in range(len(_WINDOWS)):
                n[i] += 1
                total[i] += row[2]
            for counter in self.merchants.values():
                counter[row[3]] += 1
            self.end += 1
        for i, w in enumerate(_WINDOWS):
            lo = self.lo[i]
            while lo < self.end and rows[lo][0] <= ts - w:
                n[i] -= 1
                total[i] = total[i] - rows[lo][2] if n[i] else 0.0  # an empty window holds no rounding dust
                if w in self.merchants:
                    counter = self.merchants[w]
                    counter[rows[lo][3]] -= 1
                    if not counter[rows[lo][3]]:
                        del counter[rows[lo][3]]
                lo += 1
            self.lo[i] = lo
        if self.lo[-1] > _TRIM:  # the widest window has moved on: forget what it left behind
            k = self.lo[-1]
            del rows[:k]
            self.end -= k
            self.lo = [lo - k for lo in self.lo]


class _Merchant:
    __slots__ = ("hour", "in_hour", "closed", "sums", "frauds", "labels")

    def __init__(self) -> None:
        self.hour, self.in_hour = -1, 0
        self.closed = [deque() for _ in _HOURLY]  # (hour, transactions) of whole earlier hours
        self.sums = [0] * len(_HOURLY)
        self.frauds = {w: deque() for _, w in _MERCHANT_RATES} | {w: deque() for w in SHARE_WINDOWS.values()}
        self.labels = {w: deque() for w in SHARE_WINDOWS.values()}  # labelled_at of every label


def _known(times: deque, ts: float, w: float) -> int:
    """How many of ``times`` fall in (ts - w, ts]; drops those that never will again."""
    while times and times[0] <= ts - w:
        times.popleft()
    if times and times[-1] > ts:  # a label from after ts (only with out-of-order labels)
        return sum(1 for t in times if t <= ts)
    return len(times)


def _add_time(times: deque, t: float) -> None:
    if not times or times[-1] <= t:
        times.append(t)
    else:
        insort(times, t)


class IncrementalFeatures:
    """``apply(...)`` gives a transaction's features and records it; ``apply_label`` records a
    label (once per transaction: the caller joins labels to transactions)."""

    def __init__(self, label_shares: bool = False) -> None:
        self.cards: dict[str, _Card] = {}
        self.merchants: dict[str, _Merchant] = {}
        self.first_seen: dict[tuple[str, str], float] = {}
        self.label_shares = label_shares

    def apply(self, tx_id: str, ts: float, card_id: str, merchant_id: str, amount: float, country: str,
              channel: str) -> dict[str, float]:
        hour = math.floor(ts / HOUR)
        day = math.floor(ts / DAY)
        x = {"amount": amount, "log_amount": math.log1p(amount), "hour_of_day": float(hour % 24),
             "is_weekend": float((day + 3) % 7 >= 5), "is_night": float(hour % 24 < 6)}
        card = self.cards.get(card_id) or self.cards.setdefault(card_id, _Card())
        card.advance(ts)
        previous = card.rows[card.end - 1] if card.end > card.lo[_W[AGE_CAP_S]] else None
        first = self.first_seen.get((card_id, merchant_id))
        for name, aggregation, w in _CARD:
            i = _W[w]
            n, total = card.n[i], card.total[i]
            if aggregation == "count":
                x[name] = float(n)
            elif aggregation == "sum":
                x[name] = total
            elif aggregation == "mean":
                x[name] = total / n if n else 0.0
            elif aggregation == "ratio":
                x[name] = amount / max(total / n, CENT) if n else 1.0
            elif aggregation == "zscore":
                x[name] = _zscore(amount, card.rows, card.lo[i], card.end)
            elif aggregation == "seconds_since_prev":
                x[name] = ts - previous[0] if previous else float(w)
            elif aggregation == "distinct_merchants":
                x[name] = float(len(card.merchants[w]))
            elif aggregation == "merchant_is_new":
                x[name] = 0.0 if first is not None and first < ts else 1.0
            elif aggregation == "country_changed":
                x[name] = float(previous is not None and previous[4] != country)
            else:  # channel_changed
                x[name] = float(previous is not None and previous[5] != channel)
        insort(card.rows, (ts, _member(amount, country, channel, merchant_id, tx_id), amount, merchant_id,
                           country, channel), lo=card.end)
        if first is None:
            self.first_seen[card_id, merchant_id] = ts
        self._merchant(x, self.merchants.get(merchant_id) or self.merchants.setdefault(merchant_id, _Merchant()),
                       ts, hour)
        return x

    def _merchant(self, x: dict[str, float], m: _Merchant, ts: float, hour: int) -> None:
        if hour != m.hour:
            for i, closed in enumerate(m.closed):
                if m.in_hour:
                    closed.append((m.hour, m.in_hour))
                    m.sums[i] += m.in_hour
            m.hour, m.in_hour = hour, 0
        for i, w in enumerate(_HOURLY):
            closed = m.closed[i]
            while closed and closed[0][0] < hour - w // HOUR:
                m.sums[i] -= closed.popleft()[1]
        for name, w in _MERCHANT_COUNTS:
            x[name] = float(m.sums[_H[w]])
        for name, w in _MERCHANT_RATES:
            n = m.sums[_H[w]]
            x[name] = _known(m.frauds[w], ts, w) / n if n else 0.0
        if self.label_shares:
            for label, w in SHARE_WINDOWS.items():
                labelled = _known(m.labels[w], ts, w)
                x[f"merchant_fraud_share_{label}"] = _known(m.frauds[w], ts, w) / labelled if labelled else 0.0
                if label in LABEL_COUNT_WINDOWS:
                    x[f"merchant_labels_{label}"] = float(labelled)
        m.in_hour += 1

    def apply_label(self, merchant_id: str, labelled_at: float, is_fraud: bool) -> None:
        m = self.merchants.get(merchant_id)
        if m is None:
            return
        if is_fraud:
            for times in m.frauds.values():
                _add_time(times, labelled_at)
        if self.label_shares:
            for times in m.labels.values():
                _add_time(times, labelled_at)


def _member(amount: float, country: str, channel: str, merchant: str, tx_id: str) -> str:
    # services.features.definitions.history_member without building a Transaction
    return f"{amount!r}|{country}|{channel}|{len(merchant.encode())}|{merchant}|{tx_id}"


def _zscore(amount: float, rows: list[tuple], lo: int, end: int) -> float:
    """The reference's two passes, oldest first, so equal amounts give exactly 0."""
    n = end - lo
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(lo, end):
        total += rows[i][2]
    mean, ss = total / n, 0.0
    for i in range(lo, end):
        d = rows[i][2] - mean
        ss += d * d
    std = math.sqrt(ss / (n - 1))
    return 0.0 if std <= 1e-9 * mean else (amount - mean) / std

