"""The feature definitions at constant cost per event, for ``fraudstream evaluate``.

A card keeps its last 30 days as sorted columns with running (prefix) sums; a window is two
binary searches and a subtraction, whatever its length. A merchant keeps hourly counts and
the times its labels became known, the same way. So a 1.75 M-row file costs seconds instead
of the reference's whole-history scans. Same names and meanings as
:mod:`services.features.reference`; ``tests/unit/test_incremental.py`` holds the two equal
(1e-9 relative: prefix sums round differently from the reference's oldest-first loop).

Transactions must come in nondecreasing ``ts`` (evaluate refuses a late one); labels as they
become known, one per transaction (the caller joins them). ``amount`` may be 0 (card
testing): ``card_amount_ratio_30d`` divides by the mean amount floored at one cent, as the
reference does.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

from services.features.definitions import AGE_CAP_S, DAY, FEATURE_NAMES, HOUR, by_entity

CENT = 0.01

_CARD = tuple((f.name, f.aggregation, f.window_s or AGE_CAP_S) for f in by_entity("card"))
_WINDOWS = tuple(sorted({w for _, _, w in _CARD}))
_W = {w: i for i, w in enumerate(_WINDOWS)}
_KEEP_S = max(_WINDOWS)
_WIDEST = len(_WINDOWS) - 1
_AGE = _W[AGE_CAP_S]
NAMES = FEATURE_NAMES
"""Every feature the engine computes, in the order of :meth:`IncrementalFeatures.values`."""
_AT = {name: i for i, name in enumerate(NAMES)}


def _named(aggregation: str) -> tuple[tuple[int, int], ...]:
    """(position in NAMES, window index) of the card features of one aggregation."""
    return tuple((_AT[name], _W[w]) for name, a, w in _CARD if a == aggregation)


_COUNT, _SUM, _MEAN, _RATIO, _Z = (_named(a) for a in ("count", "sum", "mean", "ratio", "zscore"))
_DISTINCT = _named("distinct_merchants")
_SINCE = tuple((_AT[name], float(w)) for name, a, w in _CARD if a == "seconds_since_prev")
_NEW, _COUNTRY, _CHANNEL = (tuple(_AT[name] for name, a, _ in _CARD if a == agg)
                            for agg in ("merchant_is_new", "country_changed", "channel_changed"))
_MERCHANT_COUNTS = tuple((_AT[f.name], f.window_s // HOUR) for f in by_entity("merchant") if f.aggregation == "count")
_MERCHANT_RATES = tuple((_AT[f.name], f.window_s, f.window_s // HOUR) for f in by_entity("merchant")
                        if f.aggregation == "fraud_rate")
_SHARES, _LABELS = (tuple((_AT[f.name], f.window_s // HOUR) for f in by_entity("merchant") if f.aggregation == agg)
                    for agg in ("fraud_share", "label_count"))
_AMOUNT, _LOG_AMOUNT, _HOUR_OF_DAY, _WEEKEND, _NIGHT = (
    _AT[n] for n in ("amount", "log_amount", "hour_of_day", "is_weekend", "is_night"))
_MERCHANT_KEEP_S = max(f.window_s for f in by_entity("merchant"))
_TRIM = 256
"""A merchant's hours or label times dropped at once when they have left every window."""
_CARD_TRIM = 16
"""A card's rows dropped at once (amortises the copy; a card holds its month plus at most
this many, so that the cards' rows stay the size of a month of traffic)."""


class _Card:
    """A card's transactions of the widest window, in the history ZSET's order, as columns
    with prefix sums: ``total[j]`` adds the first j amounts, ``squares[j]`` their squared
    distance to ``shift`` (its first amount: keeps the variance from cancelling) and
    ``changes[j]`` counts the amounts among them that differ from the one before."""

    __slots__ = ("ts", "rows", "total", "squares", "changes", "shift")

    def __init__(self, shift: float) -> None:
        self.ts: list[float] = []
        self.rows: list[tuple] = []  # (ts, amount, merchant, country, channel, tx_id)
        self.total, self.squares, self.changes, self.shift = [0.0], [0.0], [0], shift

    def insert(self, row: tuple, end: int) -> None:
        """Add a row that is not earlier than ``rows[:end]``, keeping the ZSET's order."""
        rows = self.rows
        if not rows or rows[-1][0] < row[0]:
            self._extend(row)
            return
        # a tie in time: the ZSET orders equal times by member, so redo the tail (rare)
        tail = sorted(rows[end:] + [row], key=_zset_order)
        del rows[end:], self.ts[end:], self.total[end + 1:], self.squares[end + 1:], self.changes[end + 1:]
        for r in tail:
            self._extend(r)

    def _extend(self, row: tuple) -> None:
        amount, d = row[1], row[1] - self.shift
        changed = bool(self.rows) and self.rows[-1][1] != amount
        self.rows.append(row)
        self.ts.append(row[0])
        self.total.append(self.total[-1] + amount)
        self.squares.append(self.squares[-1] + d * d)
        self.changes.append(self.changes[-1] + changed)

    def forget_before(self, k: int) -> None:
        total, squares, changes = self.total[k], self.squares[k], self.changes[k]
        del self.ts[:k], self.rows[:k]
        self.total = [t - total for t in self.total[k:]]
        self.squares = [q - squares for q in self.squares[k:]]
        self.changes = [c - changes for c in self.changes[k:]]


def _zset_order(row: tuple) -> tuple[float, str]:
    ts, amount, merchant, country, channel, tx_id = row
    return ts, _member(amount, country, channel, merchant, tx_id)


class _Merchant:
    __slots__ = ("hours", "counts", "frauds", "labels")

    def __init__(self) -> None:
        self.hours: list[int] = []  # hours with transactions, ascending
        self.counts: list[int] = [0]  # counts[j]: transactions in hours[:j]
        self.frauds: list[float] = []  # labelled_at of its fraud labels, ascending
        self.labels: list[float] = []  # labelled_at of all its labels


def _known(times: list[float], ts: float, w: float) -> int:
    """How many of the ascending ``times`` fall in (ts - w, ts]."""
    return bisect_right(times, ts) - bisect_right(times, ts - w)


def _known_hours(times: list[float], hour: int, hours: int) -> int:
    """How many of the ascending ``times`` fall in the whole hours [hour - hours, hour)."""
    return bisect_left(times, hour * HOUR) - bisect_left(times, (hour - hours) * HOUR)


def _add_time(times: list[float], t: float, now: float) -> None:
    if not times or times[-1] <= t:
        times.append(t)
    else:
        insort(times, t)
    if len(times) > _TRIM and times[_TRIM] <= now - _MERCHANT_KEEP_S:
        del times[:bisect_right(times, now - _MERCHANT_KEEP_S)]


class IncrementalFeatures:
    """``values(...)`` gives a transaction's features (in :data:`NAMES` order) and records it;
    ``apply(...)`` the same as a dict; ``apply_label`` records a label (once per transaction:
    the caller joins labels to transactions)."""

    def __init__(self) -> None:
        self.cards: dict[str, _Card] = {}
        self.merchants: dict[str, _Merchant] = {}
        self.first_seen: dict[tuple[str, str], float] = {}
        self.names = NAMES
        """The features :meth:`values` gives, in its order."""
        self._blank = [0.0] * len(self.names)

    def apply(self, tx_id: str, ts: float, card_id: str, merchant_id: str, amount: float, country: str,
              channel: str) -> dict[str, float]:
        return dict(zip(self.names, self.values(tx_id, ts, card_id, merchant_id, amount, country, channel)))

    def values(self, tx_id: str, ts: float, card_id: str, merchant_id: str, amount: float, country: str,
               channel: str) -> list[float]:
        x = self._blank[:]
        hour = math.floor(ts / HOUR)
        hour_of_day = hour % 24
        x[_AMOUNT], x[_LOG_AMOUNT], x[_HOUR_OF_DAY] = amount, math.log1p(amount), float(hour_of_day)
        x[_WEEKEND], x[_NIGHT] = float((math.floor(ts / DAY) + 3) % 7 >= 5), float(hour_of_day < 6)
        card = self.cards.get(card_id)
        if card is None:
            card = self.cards[card_id] = _Card(amount)
        times, total = card.ts, card.total
        end = bisect_left(times, ts)  # the rows strictly earlier than ts
        lo, n, sums = [], [], []
        first = 0
        for w in reversed(_WINDOWS):  # widest first: each narrower window starts at or after it
            first = bisect_right(times, ts - w, first, end)
            lo.append(first)
            n.append(end - first)
            sums.append(total[end] - total[first] if end > first else 0.0)
        lo.reverse()
        n.reverse()
        sums.reverse()
        previous = card.rows[end - 1] if end > lo[_AGE] else None
        seen = self.first_seen.get((card_id, merchant_id))
        for at, i in _COUNT:
            x[at] = float(n[i])
        for at, i in _SUM:
            x[at] = sums[i]
        for at, i in _MEAN:
            if n[i]:
                x[at] = sums[i] / n[i]
        for at, i in _RATIO:
            x[at] = amount / max(sums[i] / n[i], CENT) if n[i] else 1.0
        for at, i in _Z:
            if n[i] > 1:
                x[at] = _zscore(card, amount, lo[i], end, sums[i])
        for at, cap in _SINCE:
            x[at] = ts - previous[0] if previous else cap
        for at, i in _DISTINCT:
            x[at] = float(len({r[2] for r in card.rows[lo[i]:end]}) if n[i] > 1 else n[i])
        for at in _NEW:
            x[at] = 0.0 if seen is not None and seen < ts else 1.0
        if previous is not None:
            for at in _COUNTRY:
                x[at] = float(previous[3] != country)
            for at in _CHANNEL:
                x[at] = float(previous[4] != channel)
        card.insert((ts, amount, merchant_id, country, channel, tx_id), end)
        if lo[_WIDEST] > _CARD_TRIM:  # the widest window has moved on: forget what it left behind
            card.forget_before(lo[_WIDEST])
        if seen is None:
            self.first_seen[card_id, merchant_id] = ts
        m = self.merchants.get(merchant_id)
        if m is None:
            m = self.merchants[merchant_id] = _Merchant()
        self._merchant(x, m, ts, hour)
        return x

    def _merchant(self, x: list[float], m: _Merchant, ts: float, hour: int) -> None:
        hours, counts = m.hours, m.counts
        end = len(hours) - 1 if hours and hours[-1] == hour else len(hours)  # whole earlier hours only
        last = counts[end]
        for at, h in _MERCHANT_COUNTS:
            x[at] = float(last - counts[bisect_left(hours, hour - h, 0, end)])
        if m.frauds:
            for at, w, h in _MERCHANT_RATES:
                seen = last - counts[bisect_left(hours, hour - h, 0, end)]
                if seen:
                    x[at] = _known(m.frauds, ts, w) / seen
        if m.labels:
            for at, h in _SHARES:
                labelled = _known_hours(m.labels, hour, h)
                if labelled:
                    x[at] = _known_hours(m.frauds, hour, h) / labelled
            for at, h in _LABELS:
                x[at] = float(_known_hours(m.labels, hour, h))
        if end == len(hours):
            hours.append(hour)
            counts.append(last)
        counts[-1] += 1
        if len(hours) > _TRIM and hours[_TRIM] < hour - _MERCHANT_KEEP_S // HOUR:
            k = bisect_left(hours, hour - _MERCHANT_KEEP_S // HOUR)
            del hours[:k]
            m.counts = [c - counts[k] for c in counts[k:]]

    def apply_label(self, merchant_id: str, labelled_at: float, is_fraud: bool) -> None:
        m = self.merchants.get(merchant_id)
        if m is None:
            return
        if is_fraud:
            _add_time(m.frauds, labelled_at, labelled_at)
        _add_time(m.labels, labelled_at, labelled_at)


def _zscore(card: _Card, amount: float, lo: int, end: int, total: float) -> float:
    n = end - lo  # at least 2
    if card.changes[end] == card.changes[lo + 1]:  # equal amounts: exactly 0, as the reference's dust test gives
        return 0.0
    mean = total / n
    shifted = total - n * card.shift
    squares = card.squares[end] - card.squares[lo]
    std = math.sqrt(max(squares - shifted * shifted / n, 0.0) / (n - 1))
    return 0.0 if std <= 1e-9 * mean else (amount - mean) / std


def _member(amount: float, country: str, channel: str, merchant: str, tx_id: str) -> str:
    # services.features.definitions.history_member without building a Transaction
    return f"{amount!r}|{country}|{channel}|{len(merchant.encode())}|{merchant}|{tx_id}"
