"""Versioned snapshots: the model in training is published every ``publish_every_labels``
labels or ``publish_every_s`` seconds, as the next version on ``model.versions``.

Offsets are committed only when a version is published (``published``): after a restart
the learner resumes from its last snapshot and relearns exactly what the snapshot lacks.
Announcements wait in ``unsent`` until the runner acknowledges them: one made by a try that
then failed is sent by the retry, not lost.
"""

from __future__ import annotations

import logging
import time

from services.learner.lineage import Lineage
from services.learner.once import LearnedOnce
from services.learner.retrain import Decision
from services.model import registry
from services.model.artifacts import ArtifactError, ArtifactStore, dump
from services.model.batch import Model
from shared.codec import encode
from shared.events import ModelVersionPublished
from shared.kafka import Out
from shared.settings import Settings
from shared.topics import MODEL_VERSIONS

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, settings: Settings, artifacts: ArtifactStore, lineage: Lineage, once: LearnedOnce):
        self.settings, self.artifacts, self.lineage, self.once = settings, artifacts, lineage, once
        self.topic = settings.topic(MODEL_VERSIONS)
        self.last_publish = time.monotonic()
        self.published = False
        """A snapshot holds everything consumed so far: offsets may be committed."""
        self.unsent: list[Out] = []
        """Announcements made and not yet acknowledged."""
        self._next_to_retire = 0
        """Announcements before this index in the lineage's history were looked at by ``_retire``."""
        self._spared: list[ModelVersionPublished] = []
        """Announcements past the kept ones whose version was still serving or shadowed."""

    def acknowledged(self) -> bool:
        """The runner sent every announcement; returns whether a snapshot was among them."""
        published, self.published, self.unsent = self.published, False, []
        return published

    async def maybe_publish(self) -> None:
        """The champion's snapshot (and the challenger's beside it) when one is due.

        The tx_ids a snapshot holds are marked in Redis before its announcement is returned
        for sending (a retry after a failed write writes them first): a snapshot the broker
        acknowledged always has its markers, so a restart replaying its labels skips them.
        """
        await self.once.mark()
        trainer = self.lineage.trainer
        due = trainer.learned_since_publish >= self.settings.publish_every_labels or (
            trainer.learned_since_publish and time.monotonic() - self.last_publish >= self.settings.publish_every_s
        )
        if not due:
            return
        event = await self.announce(
            trainer.model, parent=self.lineage.version, reason="periodic" if self.lineage.version else "initial",
            status="champion", training_window=trainer.window(), metrics=trainer.metrics.as_dict(),
        )
        self.lineage.version = event.version
        trainer.learned_since_publish = 0
        self.last_publish = time.monotonic()
        self.published = True
        self.once.sealed(event)
        await self.once.mark()
        log.info("published %s after %d labels", event.version, event.training_window.labels_seen)
        await self._publish_shadow(event)

    async def _publish_shadow(self, champion: ModelVersionPublished) -> None:
        """The challenger's snapshot beside each champion snapshot, with both metric sets."""
        shadow = self.lineage.shadow
        challenger = shadow.trainer
        if challenger is None or not challenger.learned_since_publish:
            return
        event = await self.announce(
            challenger.model, parent=shadow.version, reason="periodic", status="challenger",
            training_window=challenger.window(), metrics=challenger.metrics.as_dict(),
            champion_metrics=champion.metrics,
        )
        shadow.version = event.version
        challenger.learned_since_publish = 0

    def settle(self, verdict: ModelVersionPublished, decision: Decision) -> None:
        """After a challenger's verdict is announced: promoted, training continues from it (it
        holds every label consumed so far that is still in the window, so offsets may be
        committed); rejected, offsets wait for the champion's next snapshot unless it has
        learned nothing since the last."""
        trainer = self.lineage.trainer
        if verdict.status == "champion":
            assert decision.challenger is not None  # announced: there is one
            trainer.replace(decision.challenger, decision.window, decision.challenger_pairs)
            trainer.start = verdict.training_window.start
            trainer.end = max(filter(None, (trainer.end, verdict.training_window.end)), default=None)
            self.lineage.version = verdict.version
            self.last_publish = time.monotonic()
            self.published = True
        elif trainer.learned_since_publish == 0:
            self.published = True  # the champion's snapshot is current: nothing to replay

    async def announce(self, model: Model, **fields) -> ModelVersionPublished:
        """Store the model under the next version and queue its announcement (``unsent``)."""
        version = registry.next_version(self.lineage.history)
        blob, sha = dump(model)
        event = ModelVersionPublished(version=version, artifact_ref=await self.artifacts.put(version, blob),
                                      artifact_sha256=sha, **fields)
        self.lineage.record(event)
        self.unsent.append(Out(self.topic, version.encode(), encode(event)))
        await self._retire()
        return event

    async def _retire(self) -> None:
        """Artifacts of versions announced before the latest ``artifacts_kept`` go after
        ``artifact_grace_s`` (a replica still loading one has that long), except the
        champion's, the shadowed challenger's and any version among the kept ones: without
        this every snapshot stays forever (a batch champion's is ~275 KB, one a minute)."""
        history, keep = self.lineage.history, self.settings.artifacts_kept
        champion = registry.champion(history)
        recent = {e.version for e in history[-keep:]}
        alive = recent | {champion.version if champion else None, self.lineage.version, self.lineage.shadow.version}
        due, self._spared = self._spared + history[self._next_to_retire : max(0, len(history) - keep)], []
        self._next_to_retire = max(self._next_to_retire, len(history) - keep)
        for event in due:
            if event.version in alive:
                if event.version not in recent:
                    self._spared.append(event)  # serving or shadowed: looked at again next time
                continue
            try:
                await self.artifacts.retire(event.artifact_ref, self.settings.artifact_grace_s)
            except ArtifactError as exc:  # not ours, or the store refused: leave it, say so
                log.warning("artifact of %s not retired: %s", event.version, exc)
