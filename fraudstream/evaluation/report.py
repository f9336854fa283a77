"""The evaluation report: how well scores caught fraud over a period, and what it cost in alerts.

Input is a *scores file*, one row per scored transaction (:data:`SCORE_COLUMNS`), which
``fraudstream replay --scores-out`` writes with :func:`write_scores`. Metrics that need the
truth use the labelled rows only; alert volumes (the alert-rate threshold, alerts per day) use
every transaction, because an alert costs an analyst whether or not a label ever arrives, and
genuine labels are sampled, so the labelled rows are not a fair sample of the traffic.

>>> from datetime import datetime, timezone
>>> at = lambda day, hour: datetime(2024, 3, day, hour, tzinfo=timezone.utc)
>>> rows = [ScoredRow("t1", at(1, 9), "A", "m1", 0.9, "v1", True),
...         ScoredRow("t2", at(1, 10), "B", "m1", 0.2, "v1", False),
...         ScoredRow("t3", at(2, 11), "A", "m2", 0.7, "v1", True),
...         ScoredRow("t4", at(2, 12), "C", "m2", 0.4, "v1", None)]
>>> report = build_report(rows, k=1, alert_rate=0.25)
>>> report.transactions, report.labelled, report.frauds, report.average_precision
(4, 3, 2, 1.0)
>>> [(d.day.isoformat(), d.card_precision, d.alerts) for d in report.days]
[('2024-03-01', 1.0, 1), ('2024-03-02', 0.0, 0)]
>>> report.alert_rate_threshold, report.recall_at_alert_rate
(0.9, 0.5)
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

from services.model.metrics import average_precision, roc_auc

SCORE_COLUMNS = ("tx_id", "time", "card", "merchant", "score", "model_version", "label")


class ScoredRow(NamedTuple):
    tx_id: str
    time: datetime
    """Aware; :func:`read_scores` gives UTC, and days are UTC days."""
    card: str
    merchant: str
    score: float
    model_version: str
    label: bool | None
    """None while the truth is unknown."""


def write_scores(rows: Iterable[ScoredRow], path: str | Path) -> int:
    """Write a scores file, streaming; returns the row count. A naive time raises ValueError."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(SCORE_COLUMNS)
        for row in rows:
            if row.time.tzinfo is None:
                raise ValueError(f"{row.tx_id}: time {row.time.isoformat()} has no zone")
            label = "" if row.label is None else "1" if row.label else "0"
            # float() first: numpy scalars would otherwise write as "np.float64(...)"
            writer.writerow((row.tx_id, row.time.isoformat(), row.card, row.merchant, str(float(row.score)),
                             row.model_version, label))
            count += 1
    return count


def read_scores(path: str | Path) -> list[ScoredRow]:
    """The rows of a scores file, times in UTC; a bad row raises ValueError naming its line."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        if tuple(next(reader, ())) != SCORE_COLUMNS:
            raise ValueError(f"{path}: header is not {','.join(SCORE_COLUMNS)}")
        return [_parse(row, f"{path}:{line}") for line, row in enumerate(reader, start=2)]


def _parse(row: list[str], where: str) -> ScoredRow:
    if len(row) != len(SCORE_COLUMNS):
        raise ValueError(f"{where}: {len(row)} columns, expected {len(SCORE_COLUMNS)}")
    tx_id, time, card, merchant, score, model_version, label = row
    try:
        at, p = datetime.fromisoformat(time), float(score)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if at.tzinfo is None:
        raise ValueError(f"{where}: time {time!r} has no zone")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: score {score} is not in [0, 1]")
    if label not in ("1", "0", ""):
        raise ValueError(f"{where}: label {label!r} is not 1, 0 or empty")
    return ScoredRow(tx_id, at.astimezone(UTC), card, merchant, p, model_version,
                     None if label == "" else label == "1")


def utc(at: datetime) -> datetime:
    """An aware time in UTC; a naive one is taken to be UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def day_of(row: ScoredRow) -> date:
    return utc(row.time).date()


def in_period(rows: Iterable[ScoredRow], start: datetime | None = None,
              end: datetime | None = None) -> list[ScoredRow]:
    """The rows with start <= time < end (either bound may be left open)."""
    lo, hi = (None if t is None else utc(t) for t in (start, end))
    return [r for r in rows if (lo is None or r.time >= lo) and (hi is None or r.time < hi)]


def card_precision_at_k(rows: Iterable[ScoredRow], k: int = 100) -> dict[date, float]:
    """Per UTC day, the share of the k riskiest cards (by their highest score that day) that
    had a fraud that day, as in Le Borgne et al.'s handbook. A card caught in an earlier
    day's top k is left out of later days: analysts have blocked it already. Unlabelled
    rows are ignored; ties go to the smaller card id.

    >>> from datetime import datetime, timezone
    >>> at = lambda day: datetime(2024, 3, day, tzinfo=timezone.utc)
    >>> rows = [ScoredRow("1", at(1), "A", "m", 0.9, "v1", True), ScoredRow("2", at(1), "B", "m", 0.5, "v1", False),
    ...         ScoredRow("3", at(2), "A", "m", 0.9, "v1", True), ScoredRow("4", at(2), "B", "m", 0.6, "v1", False)]
    >>> {d.day: p for d, p in card_precision_at_k(rows, k=1).items()}  # A was caught on day 1
    {1: 1.0, 2: 0.0}
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    cards: dict[date, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for r in rows:
        if r.label is not None:
            best, fraud = cards[day_of(r)].get(r.card, (-math.inf, False))
            cards[day_of(r)][r.card] = (max(best, r.score), fraud or r.label)
    detected: set[str] = set()
    precision = {}
    for day in sorted(cards):
        ranked = sorted((-s, c, f) for c, (s, f) in cards[day].items() if c not in detected)[:k]
        caught = {c for _, c, fraud in ranked if fraud}
        precision[day] = len(caught) / k  # the handbook's denominator: k, even on a quiet day
        detected |= caught
    return precision


def threshold_at_alert_rate(scores: Sequence[float], rate: float) -> float:
    """The score of the ⌈rate·n⌉-th riskiest transaction: alerting at ``score >= threshold``
    flags that share of the traffic (more if scores tie there).

    >>> threshold_at_alert_rate([0.1, 0.9, 0.5, 0.7], 0.5)
    0.7
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"alert rate must be in (0, 1], not {rate}")
    if not scores:
        raise ValueError("no scores")
    flagged = max(1, math.ceil(rate * len(scores) - 1e-9))  # 0.07 * 100 is 7.000000000000001
    return sorted(scores, reverse=True)[flagged - 1]


@dataclass(frozen=True)
class Day:
    day: date
    transactions: int
    labelled: int
    frauds: int
    alerts: int
    """Transactions scored at or above the report's alert threshold."""
    card_precision: float | None
    """None on a day without labels."""
    average_precision: float | None
    """None on a day without fraud."""


@dataclass(frozen=True)
class Report:
    start: datetime | None
    end: datetime | None
    first: datetime
    last: datetime
    transactions: int
    labelled: int
    frauds: int
    model_versions: tuple[str, ...]
    k: int
    alert_rate: float
    threshold: float
    roc_auc: float | None
    average_precision: float | None
    card_precision_mean: float | None
    alert_rate_threshold: float
    alerted_share: float
    """Share of transactions at or above ``alert_rate_threshold``: above ``alert_rate`` on ties."""
    recall_at_alert_rate: float | None
    precision_at_alert_rate: float | None
    alerts_per_day_mean: float
    days: tuple[Day, ...]
    undefined: dict[str, str] = field(default_factory=dict)
    """Why a metric is None, keyed by its path in :meth:`as_dict`."""

    def as_dict(self) -> dict:
        """JSON-ready: times and days as ISO strings, undefined metrics as None."""
        return {
            "period": {"start": _iso(self.start), "end": _iso(self.end), "first": self.first.isoformat(),
                       "last": self.last.isoformat()},
            "counts": {"transactions": self.transactions, "labelled": self.labelled, "frauds": self.frauds,
                       "days": len(self.days), "models": len(self.model_versions)},
            "model_versions": list(self.model_versions),
            "roc_auc": self.roc_auc,
            "average_precision": self.average_precision,
            "card_precision_at_k": {"k": self.k, "mean": self.card_precision_mean},
            "at_alert_rate": {"alert_rate": self.alert_rate, "threshold": self.alert_rate_threshold,
                              "alerted_share": self.alerted_share, "recall": self.recall_at_alert_rate,
                              "precision": self.precision_at_alert_rate},
            "alerts": {"threshold": self.threshold, "per_day_mean": self.alerts_per_day_mean},
            "days": [{**vars(d), "day": d.day.isoformat()} for d in self.days],
            "undefined": dict(self.undefined),
        }

    def table(self) -> str:
        """The report as aligned text: the period's figures, then one line per day."""
        bounds = f" within [{_iso(self.start) or '…'}, {_iso(self.end) or '…'})" if self.start or self.end else ""
        lines = [
            f"{'period':<28}{self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC, "
            f"{len(self.days)} day{'s' * (len(self.days) != 1)}{bounds}",
            f"{'transactions':<28}{self.transactions:,} ({self.labelled:,} labelled, {self.frauds:,} fraud)",
            f"{'models':<28}{_versions(self.model_versions)}",
            f"{'ROC AUC':<28}{_num(self.roc_auc)}",
            f"{'average precision':<28}{_num(self.average_precision)}",
            f"{f'card precision@{self.k}':<28}{_num(self.card_precision_mean)} (mean of days)",
            f"{f'recall at {self.alert_rate * 100:g}% alerted':<28}{_num(self.recall_at_alert_rate)} "
            f"(threshold {self.alert_rate_threshold:.3f}, precision {_num(self.precision_at_alert_rate)}, "
            f"{self.alerted_share:.2%} alerted)",
            f"{f'alerts/day at >= {self.threshold:g}':<28}{self.alerts_per_day_mean:,.1f} (mean)",
            *(f"{'':<28}{name} undefined: {why}" for name, why in self.undefined.items()),
            "",
            f"{'day':<12}{'transactions':>14}{'labelled':>10}{'frauds':>8}{'alerts':>8}"
            f"{f'card P@{self.k}':>12}{'AP':>8}",
        ]
        lines += [f"{d.day.isoformat():<12}{d.transactions:>14,}{d.labelled:>10,}{d.frauds:>8,}{d.alerts:>8,}"
                  f"{_num(d.card_precision):>12}{_num(d.average_precision):>8}" for d in self.days]
        return "\n".join(lines)


def build_report(rows: Iterable[ScoredRow], start: datetime | None = None, end: datetime | None = None,
                 k: int = 100, alert_rate: float = 0.01, threshold: float = 0.8) -> Report:
    """The report over start <= time < end. An empty period raises ValueError; a metric that
    the period cannot define (no fraud, no labels) is None, with the reason in ``undefined``."""
    rows = list(rows)
    period = in_period(rows, start, end)
    if not period:
        raise ValueError(_nothing_between(rows, start, end))
    labelled = [r for r in period if r.label is not None]
    frauds = sum(1 for r in labelled if r.label)
    cut = threshold_at_alert_rate([r.score for r in period], alert_rate)
    caught = sum(1 for r in labelled if r.label and r.score >= cut)
    labelled_alerts = sum(1 for r in labelled if r.score >= cut)
    card_precision = card_precision_at_k(labelled, k)
    by_day: dict[date, list[ScoredRow]] = defaultdict(list)
    for r in period:
        by_day[day_of(r)].append(r)
    days = tuple(_day(d, by_day[d], card_precision.get(d), threshold) for d in sorted(by_day))
    pairs = [(r.score, bool(r.label), 1.0) for r in labelled]
    undefined = _undefined(len(labelled), frauds, bool(card_precision), labelled_alerts)
    return Report(
        start=None if start is None else utc(start), end=None if end is None else utc(end),
        first=utc(min(r.time for r in period)), last=utc(max(r.time for r in period)),
        transactions=len(period), labelled=len(labelled), frauds=frauds,
        model_versions=tuple(sorted({r.model_version for r in period}, key=_version_order)),
        k=k, alert_rate=alert_rate, threshold=threshold,
        roc_auc=_defined(roc_auc(pairs)), average_precision=_defined(average_precision(pairs)),
        card_precision_mean=sum(card_precision.values()) / len(card_precision) if card_precision else None,
        alert_rate_threshold=cut, alerted_share=sum(r.score >= cut for r in period) / len(period),
        recall_at_alert_rate=caught / frauds if frauds else None,
        precision_at_alert_rate=caught / labelled_alerts if labelled_alerts else None,
        alerts_per_day_mean=sum(d.alerts for d in days) / len(days), days=days, undefined=undefined,
    )


def _day(day: date, rows: list[ScoredRow], card_precision: float | None, threshold: float) -> Day:
    labelled = [r for r in rows if r.label is not None]
    ap = average_precision([(r.score, bool(r.label), 1.0) for r in labelled])
    return Day(day, len(rows), len(labelled), sum(1 for r in labelled if r.label),
               sum(r.score >= threshold for r in rows), card_precision, _defined(ap))


def _undefined(labelled: int, frauds: int, any_card_precision: bool, labelled_alerts: int) -> dict[str, str]:
    """Why each metric that is None is None, keyed by its path in :meth:`Report.as_dict`."""
    why = {}
    if not frauds:
        no_fraud = "no labelled transaction in the period" if not labelled else "no fraud labelled in the period"
        why.update(dict.fromkeys(("roc_auc", "average_precision", "at_alert_rate.recall"), no_fraud))
    elif frauds == labelled:
        why["roc_auc"] = "no genuine transaction labelled in the period"
    if not any_card_precision:
        why["card_precision_at_k.mean"] = "no labelled transaction in the period"
    if not labelled_alerts:
        why["at_alert_rate.precision"] = "no labelled transaction at or above the threshold"
    return why


def _nothing_between(rows: list[ScoredRow], start: datetime | None, end: datetime | None) -> str:
    if not rows:
        return "no scored transactions at all"
    first, last = min(r.time for r in rows), max(r.time for r in rows)
    return (f"no scored transactions in [{_iso(start) or 'the start'}, {_iso(end) or 'the end'}); "
            f"the scores run from {first.isoformat()} to {last.isoformat()}")


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def _version_order(version: str) -> tuple[int, str]:
    """v2 before v10; names that are not vN (untrained, a manual tag) first, by name."""
    return (int(version[1:]), "") if version[:1] == "v" and version[1:].isdigit() else (-1, version)


def _versions(versions: tuple[str, ...]) -> str:
    """
    >>> _versions(("untrained", "v1", "v2")), _versions(tuple(f"v{i}" for i in range(1, 175)))
    ('untrained, v1, v2', '174 versions: v1, v2 … v173, v174')
    """
    if len(versions) <= 6:
        return ", ".join(versions)
    return f"{len(versions)} versions: {', '.join(versions[:2])} … {', '.join(versions[-2:])}"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else utc(at).isoformat()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
