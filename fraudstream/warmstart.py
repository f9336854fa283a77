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
from services.features.definitions import Refused
from services.features.reference import ReferenceFeatures
from services.model.artifacts import dump, make_store
from services.model.fraud_model import FraudModel
from shared.codec import encode
from shared.events import ModelVersionPublished, TrainingWindow, Transaction
from shared.kafka import publish_one
from shared.settings import Settings
from shared.topics import MODEL_VERSIONS

VERSION = "v1"


PASSES = 20
"""Offline, the day's labels are learned this many times over, in order. One pass is ~900
SGD steps at the production step size (0.003), which leaves the model near its prior: on the
demo's first 4,000 transactions (seeds 7 and 8, starts at 00:00 and 12:00) one pass raised
no alert, 5 passes 4–10, 20 passes 13–23, nearly all of them frauds (at most one labelled
genuine). Twenty passes take ~0.2 s."""


def warm_model(config: SimulatorConfig, transactions: int, passes: int = PASSES) -> FraudModel:
    """The online model after ``passes`` over the labels of ``transactions`` of a day before
    ``config.start`` (its own seed), as an offline training run would do.

    Every label is learned, with no prior correction for the genuine transactions that go
    unlabelled: scores then read as "how much like the labelled frauds", which puts roughly
    the frauds above the alert threshold (corrected, almost nothing alerts in a short demo).
    """
    day_before = config.model_copy(update={"seed": config.seed + 1000, "start": config.start - timedelta(days=1),
                                           "drift_at": None})
    reference, vectors, labelled = ReferenceFeatures(), {}, []
    model = FraudModel(genuine_rate=1.0)
    for emission in simulate(day_before, transactions):
        event = emission.event
        if isinstance(event, Transaction):
            result = reference.apply(event)
            if isinstance(result, Refused):  # the simulator's day is in time order per card: never late
                raise ValueError(f"warm start: {event.tx_id} refused: {result.reason}")
            vectors[event.tx_id] = result.features
        else:
            reference.apply_label(event)
            labelled.append((vectors.pop(event.tx_id), event.is_fraud))
    for _ in range(passes):
        for features, is_fraud in labelled:
            model.learn(features, is_fraud)
    # the training window counts labels, not SGD steps: the learner adds live labels to these
    model.labels_seen, model.frauds_seen = len(labelled), sum(is_fraud for _, is_fraud in labelled)
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
