"""A batch the runner retries after a transient error is resumed by the learner, not
relearned: every label counts once, and the announcement made before the failure is sent.

The handler runs on the real Redis; the artifact store fails once with the error a Redis
outage raises, after the batch was learned (the moment a relearn would double-count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError

from services.learner import service as learner
from services.learner.startup import assemble
from services.learner.trainer import Trainer
from services.model.fraud_model import FraudModel
from shared.boundary import Boundary
from shared.codec import decode, encode
from shared.events import Label, ModelVersionPublished

pytestmark = pytest.mark.integration

N = 12
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Stored:
    def __init__(self, ts: float, features: dict[str, float]):
        self.ts, self.features = ts, features


class Vectors:
    """The feature reader: every transaction's vector is stored."""

    async def lookup(self, keys):
        return {tx_id: Stored((T0 + timedelta(seconds=i)).timestamp(), {"amount": float(i)})
                for i, (_, tx_id) in enumerate(keys)}


class OutageOnce:
    """An artifact store whose first write meets Redis going away."""

    def __init__(self):
        self.blobs, self.failures = {}, 0

    async def put(self, version, blob):
        if not self.failures:
            self.failures += 1
            raise RedisConnectionError("Connection closed by server.")
        self.blobs[version] = blob
        return f"mem:{version}"


async def test_a_retried_batch_is_resumed_not_relearned(settings, redis_client):
    s = settings.model_copy(update={"publish_every_labels": N, "genuine_sample_rate": 1.0})
    trainer = Trainer(FraudModel(genuine_rate=1.0), 1.0, s.alert_threshold, s.retrain_window_labels)
    handler = assemble(s, redis_client, Vectors(), OutageOnce(), trainer, history=[])
    records = [ConsumerRecord(s.topic("labels"), 0, i, 0, 0, b"card-1",
                              encode(Label(tx_id=f"tx-{i}", card_id="card-1", is_fraud=i % 3 == 0, labelled_at=T0)),
                              None, 0, 0, []) for i in range(N)]
    batch, letters = Boundary(learner.SERVICE, s, learner.INPUTS, views=learner.SPEC.views).decode(records)
    assert letters == []

    with pytest.raises(RedisConnectionError):
        await handler(batch)  # learned, then the snapshot could not be stored
    assert trainer.model.labels_seen == N
    outs = await handler(batch)  # the runner's retry of the same batch
    assert trainer.model.labels_seen == N  # not 2 N
    (announced,) = [decode(o.value, ModelVersionPublished) for o in outs]
    assert (announced.version, announced.training_window.labels_seen, announced.training_window.frauds_seen) == \
        ("v1", N, 4)
    assert handler.ready_to_commit() is True and handler.publisher.unsent == []
    assert await handler.on_idle() == []  # sent once: nothing to send again
