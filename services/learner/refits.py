"""The batch challenger on a schedule: every ``batch_refit_every_s`` of event time, fitted on
the labelled window and judged against the champion (``retrain_batch.py``, pure); the verdict
is announced on ``model.versions`` like a retrain's, with reason ``batch``.

The clock is the event time of the learned labels' transactions (the trainer's ``end``): a
replay or a backlog refits as often per simulated day as live traffic would, and a quiet
stream refits nothing. The first refit is due one period after the earliest label learned; at
start-up, one period after the end of the window of the latest ``batch`` verdict on
``model.versions`` (a refused refit announces nothing: after a restart it may run again).

- Promoted: announced as champion; training continues from it (its online line learns on,
  and it holds every label consumed so far: offsets may be committed).
- Rejected: announced ``rejected`` with the reason in ``why`` (inspect it, or promote it by
  hand); the champion stays.
- Refused (too few labels or frauds to fit or judge): logged; the next period tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime

from services.learner.publishing import Publisher
from services.learner.retrain import Decision
from services.learner.retrain_batch import BatchConfig, refit
from services.learner.trainer import Trainer
from shared.events import ModelVersionPublished, TrainingWindow
from shared.settings import Settings

log = logging.getLogger(__name__)


class RefitClock:
    """When a scheduled refit is due, by the event time of the learned labels' transactions;
    shared with ``fraudstream evaluate``'s loop arm, so the two refit on the same days."""

    def __init__(self, every_s: float, next_due: float | None = None):
        self.every_s = every_s
        self.next_due = next_due
        """Event time (epoch s) of the next refit; None: one period after the first label."""

    def due(self, trainer: Trainer) -> float | None:
        """The event clock if a refit is due now, else None (never with no period)."""
        if not self.every_s or trainer.start is None or trainer.end is None:
            return None
        if self.next_due is None:
            self.next_due = trainer.start.timestamp() + self.every_s
        clock = trainer.end.timestamp()
        return clock if clock >= self.next_due else None

    def done(self, clock: float) -> None:
        """A refit ran (or was refused) at ``clock``: the next is one period later."""
        self.next_due = clock + self.every_s


class BatchRefits:
    def __init__(self, settings: Settings, publisher: Publisher):
        self.publisher, self.lineage = publisher, publisher.lineage
        self.config = BatchConfig.from_settings(settings)
        last = next((e for e in reversed(self.lineage.history) if e.reason == "batch" and e.training_window.end), None)
        end = last.training_window.end if last is not None else None
        every = settings.batch_refit_every_s
        self.clock = RefitClock(every, None if end is None else end.timestamp() + every)
        self.decisions: deque[Decision] = deque(maxlen=1)
        """The latest refit decision of this process (for tests and ops): only one, as a decision
        holds its challenger and the whole window it was fitted on."""

    def due(self) -> float | None:
        """The event clock if a refit is due now, else None."""
        return self.clock.due(self.lineage.trainer)

    async def maybe_refit(self) -> ModelVersionPublished | None:
        """Refit if due; the verdict's announcement (queued in the publisher's ``unsent``), or None."""
        clock = self.due()
        if clock is None:
            return None
        trainer = self.lineage.trainer
        decision = await asyncio.to_thread(refit, trainer.model, list(trainer.recent), self.config, trainer.batch)
        self.decisions.append(decision)
        if decision.challenger is None:
            log.warning("batch refit at %s refused: %s", datetime.fromtimestamp(clock, UTC), decision.why)
            self.clock.done(clock)
            return None
        assert decision.start is not None and decision.end is not None  # a challenger always has its span
        promote = decision.outcome == "promote"
        event = await self.publisher.announce(
            decision.challenger, parent=self.lineage.version, reason="batch",
            status="champion" if promote else "rejected",
            training_window=TrainingWindow(  # the line's count, as every snapshot's; the trees': metrics
                labels_seen=decision.challenger.labels_seen, frauds_seen=decision.challenger.frauds_seen,
                start=datetime.fromtimestamp(decision.start, UTC), end=datetime.fromtimestamp(decision.end, UTC)),
            metrics=decision.metrics, champion_metrics=decision.champion_metrics, why=decision.why,
        )
        self.clock.done(clock)  # after the announcement: a retried batch refits again, same seed
        self.publisher.settle(event, decision)
        if promote:
            self.publisher.once.sealed(event)  # its online line learned every label consumed so far
        log.warning("batch refit: %s %s; %s", "promoted" if promote else "rejected", event.version, decision.why)
        return event
