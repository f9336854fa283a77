"""Drift detectors and the retrain policy (pure: events in, detections out, no I/O).

Each detector takes one observation at a time (``update``) and returns the detections it
makes, like River's detectors; the monitor service feeds them and publishes the results.

- :class:`DistributionDrift` (features; :class:`ScoreDrift` adds the alert rate) compares
  a **reference** — the first ``drift_window`` rows after the current champion was
  announced — with a **current** window of the latest ``drift_window`` rows, every
  ``drift_evaluate_every`` rows. A column drifts when ``PSI ≥ psi_threshold`` or its KS
  p-value ``< ks_alpha / columns`` (Bonferroni: ``ks_alpha`` is the chance that *some*
  feature raises a false alarm at one evaluation, not each one). KS is reported as its
  statistic ``D`` against the ``D`` at which ``p`` reaches that level, so every statistic
  reads "value over threshold". The alert rate (share of scores ≥ ``alert_threshold``)
  drifts when its two-proportion ``|z|`` exceeds the two-sided critical value for
  ``ks_alpha`` (3.29 at 0.001).
- :class:`PerformanceDrift` watches labelled outcomes: River's ADWIN on the absolute
  error ``|y - score|`` (reported only when the error *rose*; ``threshold`` is then the
  error level before the change), and the drop in average precision over the last
  ``performance_window`` labels against the first ones after the champion.
- **Severity** is how far over the threshold: < 1.5× info, < 3× warning, else critical.
- **Hysteresis** (:class:`Latch`): a detection is emitted when a statistic crosses its
  threshold and again only if its severity rises (so at most three per episode: a
  sliding window crosses the threshold gradually, at first as info); nothing more until
  it has fallen below ``drift_rearm_fraction`` × threshold, which re-arms it.
- :class:`RetrainPolicy` turns significant detections into at most one retrain request per
  ``retrain_cooldown_s`` of *event* time.

>>> [severity(r) for r in (1.0, 1.6, 3.0)]
['info', 'warning', 'critical']
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Literal, Mapping

import numpy as np
from river.drift import ADWIN

from services.model.metrics import Prequential
from services.monitor.windows import (
    PairedWindow, ReferenceColumn, bin_shares, ks_critical, ks_statistic, psi, two_proportion_z, z_critical,
)
from shared.events import DriftDetected, RetrainRequested, Window

Kind = Literal["feature", "score", "performance"]


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor's knobs; a Settings field of the same name overrides the default."""

    drift_window: int = 2000
    drift_evaluate_every: int = 250
    drift_bins: int = 10
    drift_sample_every: int = 1
    """Keep 1 in this many transactions (by a hash of tx_id) in the drift windows."""
    drift_rearm_fraction: float = 0.5
    drift_warmup_s: float = 0.0
    """Event seconds after the first transaction during which distributions are not judged."""
    psi_threshold: float = 0.2
    ks_alpha: float = 0.001
    alert_threshold: float = 0.8
    performance_window: int = 1000
    performance_evaluate_every: int = 100
    performance_min_frauds: int = 20
    ap_drop_threshold: float = 0.1
    adwin_delta: float = 0.002
    recent_scores: int = 200_000
    retrain_cooldown_s: float = 600.0
    retrain_min_features: int = 3

    @classmethod
    def from_settings(cls, settings: object, **overrides) -> "MonitorConfig":
        known = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        return cls(**(known | overrides))


def severity(ratio: float) -> Literal["info", "warning", "critical"]:
    return "critical" if ratio >= 3.0 else "warning" if ratio >= 1.5 else "info"


@dataclass(frozen=True)
class Detection:
    """A statistic that crossed its threshold (or went further over it), and over which windows."""

    kind: Kind
    feature: str | None
    statistic: str
    value: float
    threshold: float
    reference: Window
    current: Window

    @property
    def ratio(self) -> float:
        return self.value / self.threshold if self.threshold > 0 else math.inf

    def event(self, model_version: str | None) -> DriftDetected:
        return DriftDetected(kind=self.kind, feature=self.feature, statistic=self.statistic,
                             value=self.value, threshold=self.threshold, reference=self.reference,
                             current=self.current, model_version=model_version, severity=severity(self.ratio))


class Latch:
    """Hysteresis per key: reports a key when it enters drift (``ratio ≥ 1``) and when its
    severity rises while drifted, never twice for one level; re-arms once ``ratio < rearm``.

    >>> latch = Latch(rearm=0.5)
    >>> [latch.update("amount", r) for r in (0.9, 1.2, 1.1, 1.6, 0.7, 3.2, 1.0, 0.4, 1.0)]
    [False, True, False, True, False, True, False, False, True]
    """

    def __init__(self, rearm: float):
        self.rearm = rearm
        self.levels: dict[str, int] = {}

    @property
    def tripped(self) -> frozenset[str]:
        return frozenset(self.levels)

    def update(self, key: str, ratio: float) -> bool:
        """True when ``key`` has just drifted, or drifted further (a higher severity)."""
        level = self.levels.get(key, 0)
        if level and ratio < self.rearm:
            del self.levels[key]
            return False
        new = 0 if ratio < 1.0 else _SEVERITY_LEVEL[severity(ratio)]
        if new > level:
            self.levels[key] = new
            return True
        return False


_SEVERITY_LEVEL = {"info": 1, "warning": 2, "critical": 3}


class DistributionDrift:
    """PSI and KS of every column: the frozen reference against the sliding current window.

    The columns are the keys seen while the reference fills; a key missing from a row
    counts as absent (NaN, left out of that column's statistics), and a key first seen
    after the reference filled waits for the next reset.
    """

    MIN_ROWS = 50
    """A column with fewer non-missing values in either window is not compared."""

    def __init__(self, kind: Kind, config: MonitorConfig):
        self.kind = kind
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget both windows: the next ``drift_window`` rows become the reference."""
        self.window: PairedWindow | None = None
        self.latch = Latch(self.config.drift_rearm_fraction)
        self._reference: list[ReferenceColumn] = []

    @property
    def drifted(self) -> frozenset[str]:
        return self.latch.tripped

    def _columns_changed(self) -> None:
        columns = self.window.columns
        self._known = frozenset(columns)
        self._row = itemgetter(*columns) if len(columns) > 1 else lambda v: [v[c] for c in columns]

    def update(self, values: Mapping[str, float], ts: datetime | None) -> list[Detection]:
        if self.window is None:
            self.window = PairedWindow(sorted(values), self.config.drift_window)
            self._columns_changed()
        window = self.window
        if not window.reference_full and not values.keys() <= self._known:
            for name in sorted(values.keys() - self._known):
                window.add_column(name)
            self._columns_changed()
        try:
            row = self._row(values)
        except KeyError:
            row = [values.get(c, math.nan) for c in window.columns]
        window.push(row, ts)
        if not window.ready or (window.current_seen - window.size) % self.config.drift_evaluate_every:
            return []
        if not self._reference:
            self._reference = [ReferenceColumn(column, self.config.drift_bins) for column in window.reference]
        return self.evaluate()

    def evaluate(self) -> list[Detection]:
        window = self.window
        alpha = self.config.ks_alpha / max(len(window.columns), 1)  # Bonferroni over the columns
        current = np.sort(window.current, axis=1)  # NaN sorts last
        present = window.size - np.isnan(window.current).sum(axis=1)
        spans = window.spans()
        found = []
        for j, (name, ref) in enumerate(zip(window.columns, self._reference)):
            cur = current[j, : present[j]]
            if len(ref) < self.MIN_ROWS or len(cur) < self.MIN_ROWS:
                continue
            candidates = (
                ("psi", psi(ref.shares, bin_shares(cur, ref.edges)), self.config.psi_threshold),
                ("ks", ks_statistic(ref.sorted, cur), ks_critical(alpha, len(ref), len(cur))),
            )
            statistic, value, threshold = max(candidates, key=lambda c: c[1] / c[2])
            if self.latch.update(name, value / threshold):
                found.append(Detection(self.kind, name, statistic, value, threshold, *spans))
        return found


class ScoreDrift(DistributionDrift):
    """The score distribution (column ``score``) plus the alert rate (``alert_rate``)."""

    def __init__(self, config: MonitorConfig):
        super().__init__("score", config)

    def update(self, score: float, ts: datetime | None) -> list[Detection]:  # type: ignore[override]
        return super().update({"score": score}, ts)

    def evaluate(self) -> list[Detection]:
        found = super().evaluate()
        window, cut = self.window, self.config.alert_threshold
        z = abs(two_proportion_z(int((window.reference[0] >= cut).sum()), window.size,
                                 int((window.current[0] >= cut).sum()), window.size))
        threshold = z_critical(self.config.ks_alpha)
        if self.latch.update("alert_rate", z / threshold):
            found.append(Detection("score", "alert_rate", "alert_rate_z", z, threshold, *window.spans()))
        return found


class PerformanceDrift:
    """Concept drift from labels joined to the scores the model gave."""

    TIMES_KEPT = 100_000
    """Label times remembered to date ADWIN's windows (older starts are approximate)."""

    def __init__(self, config: MonitorConfig):
        self.config = config
        self.reset()

    def reset(self) -> None:
        k = self.config.performance_window
        self.adwin = ADWIN(delta=self.config.adwin_delta)
        self.reference = Prequential(threshold=self.config.alert_threshold, window=k)
        self.current = Prequential(threshold=self.config.alert_threshold, window=k)
        self.reference_metrics: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        """precision, recall, average_precision… over the last ``performance_window`` labels."""
        self.latch = Latch(self.config.drift_rearm_fraction)
        self.labels = 0
        self._times: deque[datetime | None] = deque(maxlen=self.TIMES_KEPT)
        self._reference_span = Window()

    def update(self, score: float, is_fraud: bool, ts: datetime | None) -> list[Detection]:
        count, mean = self.adwin.width, self.adwin.estimation
        error = abs(float(is_fraud) - score)
        self.adwin.update(error)
        self.labels += 1
        self._times.append(ts)
        found = []
        if self.adwin.drift_detected:
            found += self._adwin_detection(int(count) + 1, mean * count + error)
        k = self.config.performance_window
        if self.labels <= k:
            self.reference.update(score, is_fraud)
            if self.labels == k:
                self.reference_metrics = self.reference.as_dict()
                self._reference_span = self._span(self.labels, k)
        self.current.update(score, is_fraud)
        if self.labels % self.config.performance_evaluate_every == 0:
            self.metrics = self.current.as_dict()
            if self.labels >= 2 * k:  # the current window no longer overlaps the reference
                found += self._precision_detection()
        return found

    def _span(self, last: int, count: int) -> Window:
        """The ``count`` labels up to label number ``last`` (1-based), dated by label time."""
        times, back = self._times, self.labels - last
        if not times or back >= len(times):
            return Window(count=count)
        return Window(start=times[-min(back + count, len(times))], end=times[-1 - back], count=count)

    def _adwin_detection(self, count: int, total: float) -> list[Detection]:
        """ADWIN cut its window of ``count`` errors summing to ``total``: old part vs recent part."""
        recent_n, recent_mean = int(self.adwin.width), self.adwin.estimation
        old_n = count - recent_n
        if old_n <= 0:
            return []
        old_mean = (total - recent_mean * recent_n) / old_n
        if recent_mean <= old_mean:
            return []  # the model got better: nothing to retrain for
        return [Detection("performance", "abs_error", "adwin_mean_abs_error", recent_mean, old_mean,
                          self._span(self.labels - recent_n, old_n), self._span(self.labels, recent_n))]

    def _precision_detection(self) -> list[Detection]:
        enough = self.config.performance_min_frauds
        if self.reference.frauds < enough or sum(y for _, y, _ in self.current.recent) < enough:
            return []
        drop = self.reference_metrics["average_precision"] - self.metrics["average_precision"]
        threshold = self.config.ap_drop_threshold
        if not self.latch.update("average_precision", drop / threshold):
            return []
        current = self._span(self.labels, self.config.performance_window)
        return [Detection("performance", "average_precision", "average_precision_drop", drop, threshold,
                          self._reference_span, current)]


class RetrainPolicy:
    """When drift is worth a retrain, and at most one request per cool-down of event time.

    Significant: any performance drift; a feature or score drift of severity critical; or
    a feature drift while ``min_features`` features are drifted at once. A significant
    detection *arms* the policy; an armed policy fires (``due``) as soon as the event
    clock is ``cooldown_s`` past the previous request: at once, or at the first event
    after. Firing disarms it, and detectors report a drift only when it starts or worsens,
    so a stream that stays drifted yields one request, not one per evaluation. A new
    champion disarms it: the reference the drift was measured against is gone.

    >>> from shared.events import DriftDetected, Window
    >>> t0 = datetime(2026, 1, 1)
    >>> policy = RetrainPolicy(cooldown_s=600, min_features=3)
    >>> drift = DriftDetected(kind="performance", statistic="adwin_mean_abs_error", value=0.3,
    ...                       threshold=0.1, reference=Window(), current=Window(), severity="critical")
    >>> policy.arm(drift, features_drifted=0)
    >>> policy.due(t0).drift_event_id == drift.event_id
    True
    >>> policy.arm(drift, features_drifted=0)
    >>> policy.due(t0 + timedelta(seconds=599)) is None   # cooling down, still armed
    True
    >>> policy.due(t0 + timedelta(seconds=600)).reason
    'performance drift: adwin_mean_abs_error 0.3 over 0.1 (critical)'
    """

    def __init__(self, cooldown_s: float, min_features: int):
        self.cooldown = timedelta(seconds=cooldown_s)
        self.min_features = min_features
        self.armed: DriftDetected | None = None
        self.last_request_at: datetime | None = None

    def significant(self, drift: DriftDetected, features_drifted: int) -> bool:
        return (drift.kind == "performance" or drift.severity == "critical"
                or (drift.kind == "feature" and features_drifted >= self.min_features))

    def arm(self, drift: DriftDetected, features_drifted: int) -> None:
        if self.armed is None and self.significant(drift, features_drifted):
            self.armed = drift

    def due(self, now: datetime | None) -> RetrainRequested | None:
        """The request to send now, if armed and cooled down; cheap enough for every event."""
        if self.armed is None or now is None:
            return None
        if self.last_request_at is not None and now < self.last_request_at + self.cooldown:
            return None
        drift, self.armed, self.last_request_at = self.armed, None, now
        return RetrainRequested(reason=describe(drift), drift_event_id=drift.event_id, requested_by="monitor")

    def disarm(self) -> None:
        self.armed = None


def describe(drift: DriftDetected) -> str:
    what = f"{drift.kind} drift" + (f" of {drift.feature}" if drift.feature else "")
    return f"{what}: {drift.statistic} {drift.value:.3g} over {drift.threshold:.3g} ({drift.severity})"
