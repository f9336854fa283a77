"""Answering a retrain request: challenger vs champion on the same held-back labels
(``retrain.py``, pure), and the verdict announced on ``model.versions``.

- Promoted: the challenger (which also learned the held-back part) is announced as
  champion and training continues from it; it holds every label consumed so far that is
  still in the window, so offsets may be committed.
- Rejected: its artifact is kept and announced as ``rejected`` (to inspect, or promote by
  hand); the champion stays, and offsets wait for its next snapshot unless it has learned
  nothing since the last.
- Refused (too few labels or frauds; with ``since``, still too few after waiting): logged,
  nothing announced.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime

from services.learner.publishing import Publisher
from services.learner.retrain import Decision, RetrainConfig, retrain
from shared.events import ModelVersionPublished, RetrainRequested, TrainingWindow
from shared.settings import Settings

log = logging.getLogger(__name__)

DECISIONS_KEPT = 1
"""Retrain decisions kept in memory: a decision holds its challenger and the whole window it
was trained on (up to ``retrain_window_labels`` labels with their feature vectors), so keeping
every one grew the learner by ~10 MiB a retrain. The verdict itself is logged and announced."""


class Verdicts:
    def __init__(self, settings: Settings, publisher: Publisher):
        self.settings, self.publisher, self.lineage = settings, publisher, publisher.lineage
        self.config = RetrainConfig.from_settings(settings)
        self.decisions: deque[Decision] = deque(maxlen=DECISIONS_KEPT)
        """The latest retrain decisions of this process, latest last (for tests and ops)."""

    def config_for(self, request: RetrainRequested) -> RetrainConfig:
        if request.since is None:
            return self.config
        s = self.settings  # as many labels since the drift as the queue waited for
        return replace(self.config, since=request.since.timestamp(), epochs=s.retrain_epochs_since_drift,
                       min_labels=s.retrain_min_labels_since_drift, min_frauds=s.retrain_min_frauds_since_drift)

    async def answer(self, request: RetrainRequested) -> ModelVersionPublished | None:
        """The verdict's announcement (queued in the publisher's ``unsent``), None if refused."""
        trainer = self.lineage.trainer
        decision = await asyncio.to_thread(retrain, trainer.model, list(trainer.recent), self.config_for(request))
        self.decisions.append(decision)
        requested = f"retrain {request.request_id} by {request.requested_by} ({request.reason})"
        if decision.challenger is None:
            log.warning("%s refused: %s", requested, decision.why)
            return None
        assert decision.start is not None and decision.end is not None  # a challenger always has its span
        promote = decision.outcome == "promote"
        event = await self.publisher.announce(
            decision.challenger, parent=self.lineage.version, reason="retrain" if promote else "rejected",
            status="champion" if promote else "rejected",
            training_window=TrainingWindow(
                labels_seen=decision.challenger.labels_seen, frauds_seen=decision.challenger.frauds_seen,
                start=datetime.fromtimestamp(decision.start, UTC), end=datetime.fromtimestamp(decision.end, UTC)),
            metrics=decision.metrics, champion_metrics=decision.champion_metrics,
            drift_event_id=request.drift_event_id, why=decision.why,
        )
        self.publisher.settle(event, decision)
        log.warning("%s: %s %s; %s", requested, "promoted" if promote else "rejected", event.version, decision.why)
        return event
