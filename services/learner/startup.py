"""Start-up: resume from the champion on ``model.versions`` (or a fresh model), the retrain
requests still queued, and the shadow challenger from its latest snapshot."""

from __future__ import annotations

import logging

from services.features import FeatureReader, feature_reader
from services.learner.batch_window import BatchWindow
from services.learner.joining import LabelJoin
from services.learner.learner import Learner
from services.learner.lineage import Lineage
from services.learner.maturity import Maturity
from services.learner.once import LearnedOnce
from services.learner.publishing import Publisher
from services.learner.refits import BatchRefits
from services.learner.retrain_queue import RetrainQueue
from services.learner.trainer import Trainer
from services.learner.verdicts import Verdicts
from services.learner.waiting import WaitingLabels
from services.model import registry
from services.model.artifacts import ArtifactStore, load_verified, make_store
from services.model.batch import Model
from services.model.fraud_model import FraudModel
from shared.errors import ArtifactError
from shared.events import ModelVersionPublished
from shared.redis import AsyncRedis
from shared.settings import Settings

log = logging.getLogger(__name__)


def assemble(settings: Settings, redis: AsyncRedis, features: FeatureReader, artifacts: ArtifactStore,
             trainer: Trainer, history: list[ModelVersionPublished]) -> Learner:
    """The learner's parts, wired (nothing is read yet)."""
    lineage = Lineage(trainer, history, artifacts)
    once = LearnedOnce(settings, redis, lineage.known)
    publisher = Publisher(settings, artifacts, lineage, once)
    join = LabelJoin(features, lineage, WaitingLabels(settings, redis), once)
    return Learner(lineage, join, Maturity(settings, redis), RetrainQueue(settings, redis), publisher,
                   Verdicts(settings, publisher), BatchRefits(settings, publisher))


async def start_learner(settings: Settings, redis: AsyncRedis) -> Learner:
    artifacts = make_store(settings, redis)
    history = await registry.history(settings)
    model: Model = FraudModel(genuine_rate=settings.genuine_sample_rate)
    current = registry.champion(history)
    if current is not None:
        try:
            model = await load_verified(artifacts, current.artifact_ref, current.artifact_sha256)
        except ArtifactError as exc:
            log.error("champion %s cannot be loaded (%s); starting a fresh model", current.version, exc)
    batch = BatchWindow(settings.batch_window_s, settings.batch_window_labels) if settings.batch_refit_every_s else None
    trainer = Trainer(model, settings.genuine_sample_rate, settings.alert_threshold, settings.retrain_window_labels,
                      batch)
    learner = assemble(settings, redis, feature_reader(redis, settings), artifacts, trainer, history)
    await learner.queue.resume()
    await learner.waiting.resume()
    challenger = active_challenger(history)
    if challenger is not None:  # resume the shadow from its latest snapshot
        try:
            model = await load_verified(artifacts, challenger.artifact_ref, challenger.artifact_sha256)
            learner.lineage.shadow.start(challenger.version, model, trainer)
        except ArtifactError as exc:
            log.error("challenger %s cannot be loaded (%s); it stops", challenger.version, exc)
    return learner


def active_challenger(history: list[ModelVersionPublished]) -> ModelVersionPublished | None:
    """The latest challenger announcement, unless a later one promoted, retired or rejected it."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].status == "challenger":
            ended = any(e.version == history[i].version for e in history[i + 1:])
            return None if ended else history[i]
    return None
