"""A challenger learning beside the champion, on the same labels, until ops decide.

It starts when a version is announced with status ``challenger`` (``fraudstream models
challenge``), learns every label the champion learns, and is published as a
``challenger`` snapshot whenever the champion is, so scoring shadow-scores it on
``scores.shadow``. Promoting its latest snapshot makes the learner continue from it;
announcing it ``retired`` or ``rejected`` ends it.
"""

from __future__ import annotations

from services.learner.trainer import Labelled, Trainer
from services.model.batch import Model
from shared.events import ModelVersionPublished


class Shadow:
    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.version: str | None = None

    def start(self, version: str, model: Model, like: Trainer) -> None:
        self.trainer = Trainer(model, like.genuine_rate, like.metrics.threshold, like.recent.maxlen or 5000)
        self.version = version

    def owns(self, event: ModelVersionPublished) -> bool:
        return self.trainer is not None and event.version == self.version

    def stop(self) -> Trainer | None:
        trainer, self.trainer, self.version = self.trainer, None, None
        return trainer

    def learn(self, labels: list[Labelled]) -> None:
        if self.trainer is not None:
            self.trainer.learn_many(labels)
