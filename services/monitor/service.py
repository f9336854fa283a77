"""monitor wiring: live distributions and labelled outcomes in, drift events and retrain requests out.

- ``transactions.enriched`` → feature drift (every feature of the feature vector);
- ``scores`` → score drift and alert-rate drift, and the score each transaction got,
  kept for the label join (the latest ``recent_scores`` of them, ~250 bytes each: labels
  later than that many scores go unmatched);
- ``labels`` → joined to that score → performance drift of the champion; a label whose
  score is no longer remembered is counted (``fraudstream_labels_unmatched``), not
  dead-lettered: the learner waits for their vectors, and dead-letters those that never come;
- ``model.versions`` → a new champion (initial, retrain, promote, rollback) restarts every
  reference window; a periodic snapshot of the same model learning online does not.

Outputs: ``drift.events`` (keyed by kind) and ``model.retrain`` (keyed by request_id).
A request's ``since`` (the event time from which the learner should learn) is the earliest
start of the current windows of the feature and score drifts detected since the last request
or champion, not the start of the drift that armed the request: the first window to show a
drift holds the change, while the one that arms the policy may start after it (3 features
drifting at once comes late). Performance windows are dated by label time, not transaction
time, and ADWIN's cut is loose (5–8 minutes before the change in the drift test): they give
``since`` only when no feature or score window did. In the drift test the armed drift's own
start was 5–8 minutes before the change or 4 after, depending on which detector the
interleaving of the topics fired first; the earliest feature or score start was 4–5 minutes
before it. An earlier false alarm in the same episode makes ``since`` earlier: the
challenger then learns more of the old world.

With ``drift_warmup_s``, transactions and scores of the first that many event seconds are
not put in the drift windows, nor labels of that time in the performance windows: on a fresh
stack (the demo) the feature store starts empty and card and merchant counts grow while its
windows fill, which a reference taken then reads as drift. The warm-up runs once per process,
from the first transaction seen.

The two busy inputs are read as views (``shared/trusted.py``), only what the detectors use
decoded: of an enriched transaction its tx_id, time and features (:class:`EnrichedSeen`),
of a score its tx_id, time, score and model version (:class:`ScoreSeen`); reasons, stages
and the rest of the transaction are skimmed. Decoding in full was ~40 % of the monitor's CPU.

The maths lives in ``detectors.py`` and ``windows.py``; this module only routes.

State is in memory, and the monitor runs as ONE replica: its windows must see the whole
stream (a second member of the group would see half of it and judge it wrongly). After a
restart the windows refill from the committed offsets: the reference becomes the first
``drift_window`` events after the restart, and until the next champion announcement every
score counts, whatever its model version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from services.monitor.detectors import (
    Detection,
    DistributionDrift,
    MonitorConfig,
    PerformanceDrift,
    RetrainPolicy,
    ScoreDrift,
    describe,
)
from services.monitor.windows import RecentScores, sampled
from shared import metrics
from shared.codec import encode
from shared.events import (
    Label,
    ModelVersionPublished,
    RetrainRequested,
)
from shared.kafka import Out
from shared.runner import Clients, Inbound, ServiceSpec, run_service
from shared.settings import Settings
from shared.topics import DRIFT_EVENTS, LABELS, MODEL_RETRAIN, MODEL_VERSIONS, SCORES, TRANSACTIONS_ENRICHED
from shared.trusted import View

SERVICE = "monitor"
INPUTS = (TRANSACTIONS_ENRICHED, SCORES, LABELS, MODEL_VERSIONS)


class TransactionSeen(View):
    tx_id: str
    ts: datetime


class EnrichedSeen(View):
    """What the monitor reads of an enriched transaction."""

    transaction: TransactionSeen
    features: dict[str, float]


class ScoreSeen(View):
    """What the monitor reads of a score."""

    tx_id: str
    ts: datetime
    score: float
    model_version: str


VIEWS: dict[str, type[View]] = {TRANSACTIONS_ENRICHED: EnrichedSeen, SCORES: ScoreSeen}
log = logging.getLogger(__name__)

PERFORMANCE = Gauge("fraudstream_monitor_performance",
                    "The champion's rolling metrics over its latest labelled transactions", ["metric"])


class Monitor:
    """The batch handler: hand each event to its detector, publish what they find."""

    def __init__(self, settings: Settings, config: MonitorConfig):
        self.settings = settings
        self.config = config
        self.features = DistributionDrift("feature", config)
        self.scores = ScoreDrift(config)
        self.performance = PerformanceDrift(config)
        self.policy = RetrainPolicy(config.retrain_cooldown_s, config.retrain_min_features)
        self.recent = RecentScores(config.recent_scores)
        self.champion: str | None = None
        self.lineage: set[str] = set()
        """The champion and the periodic snapshots it descends from (one model learning online)."""
        self.scored_by: str | None = None
        """The model version of the latest score: named in drift events until a champion is known."""
        self.clock: datetime | None = None
        """Event time: the newest transaction ts seen. Cool-downs run on it, so replays match."""
        self.warm_from: datetime | None = None
        """Event time from which distributions are judged: ``drift_warmup_s`` after the first
        transaction (features of a store that starts empty grow while its windows fill)."""
        self._warm = False
        self.episode_start: dict[str, datetime] = {}
        """``transactions`` (feature and score drifts) or ``labels`` (performance drifts) → the
        earliest current-window start since the last request or champion: the next request's
        ``since`` (see the module docstring)."""
        # per event: the policy is asked after each one, in consumed order
        self.routes: dict[str, Callable[[Any], list[Detection]]] = {
            TRANSACTIONS_ENRICHED: self.on_enriched,
            SCORES: self.on_score,
            LABELS: self.on_label,
            MODEL_VERSIONS: self.on_model_version,
        }
        self._last_batch: tuple[tuple, list[Out]] = ((), [])

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        consumed = tuple((i.record.topic, i.record.partition, i.record.offset) for i in batch)
        if consumed == self._last_batch[0]:
            # The runner retries a batch whose outputs failed to send; the windows already
            # hold it, so send the same outputs again instead of counting it twice.
            return self._last_batch[1]
        outs: list[Out] = []
        for item in batch:
            for detection in self.routes[item.topic](item.event):
                outs.append(self._drift(detection))
            request = self.policy.due(self.clock)
            if request is not None:
                outs.append(self._retrain(request))
        PERFORMANCE.labels("labels_joined").set(self.performance.labels)
        for name, value in self.performance.metrics.items():
            PERFORMANCE.labels(name).set(value)
        self._last_batch = (consumed, outs)
        return outs

    def on_enriched(self, event: EnrichedSeen) -> list[Detection]:
        tx = event.transaction
        self._advance(tx.ts)
        if self._warming_up(tx.ts) or not sampled(tx.tx_id, self.config.drift_sample_every):
            return []
        return self.features.update(event.features, tx.ts)

    def on_score(self, score: ScoreSeen) -> list[Detection]:
        self._advance(score.ts)
        self.recent.add(score.tx_id, score.score, score.model_version)
        self.scored_by = score.model_version
        if not self._in_lineage(score.model_version):
            return []  # an older model's score still in flight after a promotion
        if self._warming_up(score.ts) or not sampled(score.tx_id, self.config.drift_sample_every):
            return []
        return self.scores.update(score.score, score.ts)

    def on_label(self, label: Label) -> list[Detection]:
        joined = self.recent.pop(label.tx_id)
        if joined is None:
            metrics.LABELS_UNMATCHED.labels(SERVICE).inc()
            return []
        score, version = joined
        if not self._in_lineage(version):
            return []  # says how a retired model did: not the champion's performance
        if self.warm_from is not None and label.labelled_at < self.warm_from:
            return []  # the warm-up: scores on features of a store still filling are no yardstick
        return self.performance.update(score, label.is_fraud, label.labelled_at)

    def _in_lineage(self, version: str) -> bool:
        return self.champion is None or version in self.lineage

    def on_model_version(self, published: ModelVersionPublished) -> list[Detection]:
        if published.status != "champion" or published.version == self.champion:
            return []  # challengers and re-deliveries change nothing
        if published.reason == "periodic" and published.parent in self.lineage:
            # The learner's snapshot of the same model, still learning online: the same
            # lineage, so the references (and labels of its earlier snapshots) still count.
            self.champion = published.version
            self.lineage.add(published.version)
            return []
        log.info("monitor: champion %s (was %s): references restart", published.version, self.champion)
        self.champion = published.version
        self.lineage = {published.version}
        for detector in (self.features, self.scores, self.performance):
            detector.reset()
        self.policy.disarm()
        self.episode_start = {}
        return []

    def _warming_up(self, ts: datetime) -> bool:
        """Whether ``ts`` falls in the warm-up; says once when it starts and when it is over."""
        if self.warm_from is None:
            self.warm_from = ts + timedelta(seconds=self.config.drift_warmup_s)
            self._warm = self.config.drift_warmup_s > 0
            if self._warm:
                log.info("monitor: warming up until %s (event time): no drift judged before", self.warm_from)
        if ts < self.warm_from:
            return True
        if self._warm:
            self._warm = False
            log.info("monitor: warm-up over at %s: reference windows start now", ts)
        return False

    def _advance(self, ts: datetime) -> None:
        if self.clock is None or ts > self.clock:
            self.clock = ts

    def _drift(self, detection: Detection) -> Out:
        drift = detection.event(self.champion or self.scored_by)
        metrics.DRIFT_EVENTS.labels(drift.kind).inc()
        log.warning("monitor: %s", describe(drift))
        self.policy.arm(drift, features_drifted=len(self.features.drifted))
        clock, start = "labels" if drift.kind == "performance" else "transactions", drift.current.start
        if start is not None:
            self.episode_start[clock] = min(start, self.episode_start.get(clock, start))
        return Out(self.settings.topic(DRIFT_EVENTS), drift.kind.encode(), encode(drift))

    def _retrain(self, request: RetrainRequested) -> Out:
        since = self.episode_start.get("transactions") or self.episode_start.get("labels")
        request, self.episode_start = request.model_copy(update={"since": since}), {}
        log.warning("monitor: retrain requested (%s) on labels since %s", request.reason, request.since)
        return Out(self.settings.topic(MODEL_RETRAIN), request.request_id.encode(), encode(request))


def build_with(config: MonitorConfig | None = None):
    """The composition root, with detector settings other than the environment's (tests)."""
    @asynccontextmanager
    async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
        yield Monitor(settings, config or MonitorConfig.from_settings(settings))
    return build


SPEC = ServiceSpec(SERVICE, INPUTS, build_with(), views=VIEWS)


async def run(settings: Settings, stop: asyncio.Event, config: MonitorConfig | None = None) -> None:
    await run_service(replace(SPEC, build=build_with(config)) if config else SPEC, settings, stop)
