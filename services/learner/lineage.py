"""The model line the learner trains, and how it follows announcements on ``model.versions``.

The learner is the single writer of models, but ops announce too: a rollback or a manual
promotion makes another champion, ``fraudstream models challenge`` starts a challenger.
A champion announced by somebody else becomes what we train; a challenger learns beside
it (``shadow.py``). Announcements known at start-up are not followed again: replaying them
must not roll the model back.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.learner.shadow import Shadow
from services.learner.trainer import Labelled, Trainer
from services.model import registry
from services.model.artifacts import ArtifactStore, load_verified
from shared.errors import ArtifactError
from shared.events import ModelVersionPublished

log = logging.getLogger(__name__)


class Lineage:
    def __init__(self, trainer: Trainer, history: list[ModelVersionPublished], artifacts: ArtifactStore):
        self.trainer = trainer
        self.history = history
        """Every announcement, read at start-up and since (next versions are numbered from it)."""
        self.artifacts = artifacts
        current = registry.champion(history)
        self.version: str | None = current.version if current else None
        """The champion version the trainer's model descends from (None: never published)."""
        self.shadow = Shadow()
        self.known: set[tuple[str, datetime]] = {(e.version, e.published_at) for e in history}

    def learn(self, labels: list[Labelled]) -> None:
        """The champion line learns the labels, in order, and the shadow challenger beside it."""
        self.trainer.learn_many(labels)
        self.shadow.learn(labels)

    def record(self, event: ModelVersionPublished) -> None:
        """An announcement of our own: known, so that reading it back changes nothing."""
        self.history.append(event)
        self.known.add((event.version, event.published_at))

    async def follow(self, event: ModelVersionPublished) -> None:
        """Apply an announcement read on ``model.versions`` (our own ones are already known).

        A transient Redis error while loading an artifact propagates (the runner retries the
        batch, and the event is followed again); only an artifact that is missing or fails its
        sha256 is logged and skipped.
        """
        if (event.version, event.published_at) in self.known:
            return
        if self.shadow.owns(event) and event.status in ("retired", "rejected"):
            self.shadow.stop()
        elif self.shadow.owns(event) and event.status == "champion":
            promoted = self.shadow.stop()
            assert promoted is not None  # the shadow owns the event: it has a trainer
            self.trainer, self.version = promoted, event.version  # it learned every label since
            log.info("challenger %s promoted: training continues from it", event.version)
        elif event.status == "challenger" and event.version != self.shadow.version:
            model = await self._load(event, "cannot start challenger")
            if model is not None:
                self.shadow.start(event.version, model, self.trainer)
                log.info("challenger %s learns beside champion %s", event.version, self.version)
        elif event.status == "champion" and event.version != self.version:
            model = await self._load(event, "cannot follow champion")
            if model is not None:
                self.trainer.model, self.version = model, event.version
                log.info("training continues from %s (%s)", event.version, event.reason)
        self.record(event)  # last: a retried batch after a transient error follows it again

    async def _load(self, event: ModelVersionPublished, failing: str):
        try:
            return await load_verified(self.artifacts, event.artifact_ref, event.artifact_sha256)
        except ArtifactError as exc:
            log.error("%s %s: %s", failing, event.version, exc)
            return None
