"""A champion before the first label: v1 trained offline on an earlier day of the same world.

A fraud system is never switched on without a model, and a demo whose first alert waits for
a model learned from live labels shows nothing for its first minute (the learner's first
version comes only after ``publish_every_labels`` labels or ``publish_every_s``). So the
demo trains v1 the way the drift test does: the simulator's world, a day earlier and with
another seed, through the reference feature definitions (the same features the store
computes), learned online by the production model class; then it is stored and announced
on ``model.versions`` like any version. The learner resumes from it and scoring serves it.
"""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features.reference import ReferenceFeatures
from services.model.artifacts import dump, make_store
from services.model.fraud_model import FraudModel
from shared.codec import encode
from shared.events import ModelVersionPublished, TrainingWindow
from shared.kafka import publish_one
from shared.settings import Settings
from shared.topics import MODEL_VERSIONS

VERSION = "v1"


def warm_model(config: SimulatorConfig, transactions: int) -> FraudModel:
    """The online model after ``transactions`` of a day before ``config.start`` (its own seed).

    Every label is learned, with no prior correction for the genuine transactions that go
    unlabelled: scores then read as "how much like the labelled frauds", which puts roughly
    the frauds above the alert threshold (corrected, almost nothing alerts in a short demo).
    """
    day_before = config.model_copy(update={"seed": config.seed + 1000, "start": config.start - timedelta(days=1),
                                           "drift_at": None})
    reference, vectors = ReferenceFeatures(), {}
    model = FraudModel(genuine_rate=1.0)
    for emission in simulate(day_before, transactions):
        if emission.topic == "transactions.raw":
            vectors[emission.event.tx_id] = reference.apply(emission.event).features
        else:
            reference.apply_label(emission.event)
            model.learn(vectors.pop(emission.event.tx_id), emission.event.is_fraud)
    return model


async def announce_champion(settings: Settings, model: FraudModel) -> ModelVersionPublished:
    """Store the model as v1 and announce it as the champion (what the learner would do)."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        blob, sha = dump(model)
        ref = await make_store(settings, client).put(VERSION, blob)
    finally:
        await client.aclose()
    event = ModelVersionPublished(
        version=VERSION, reason="initial", status="champion", artifact_ref=ref, artifact_sha256=sha,
        training_window=TrainingWindow(labels_seen=model.labels_seen, frauds_seen=model.frauds_seen))
    await publish_one(settings, MODEL_VERSIONS, VERSION.encode(), encode(event))
    return event
