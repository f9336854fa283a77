"""Transient means retried: with its Redis away, a service keeps going and does the work
once Redis is back. Each test runs a redis-server of its own and stops it."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.model.artifacts import RedisArtifactStore, dump
from services.model.fraud_model import FraudModel
from services.scoring.models import UNTRAINED, ModelSlots
from shared.codec import encode
from shared.events import ModelVersionPublished, RetrainRequested
from shared.kafka import Out
from shared.runner import ServiceSpec, run_service
from shared.topics import MODEL_RETRAIN
from tests.kafka_helpers import Collector
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def champion(ref: str, sha: str) -> ModelVersionPublished:
    return ModelVersionPublished(version="v1", reason="initial", status="champion",
                                 artifact_ref=ref, artifact_sha256=sha)


async def test_scoring_retries_a_champion_whose_artifact_redis_could_not_serve(settings, own_redis):
    client = aioredis.Redis.from_url(own_redis.url)
    store = RedisArtifactStore(client, settings.redis_prefix)
    model = FraudModel()
    model.learn({"amount": 10.0}, True)
    blob, sha = dump(model)
    event = champion(await store.put("v1", blob), sha)
    slots, stop = ModelSlots(settings, store), asyncio.Event()

    own_redis.stop()
    with pytest.raises(RedisConnectionError):  # not an ArtifactError: nothing is refused
        await slots.apply(event)
    assert slots.refused == [] and slots.champion.version == UNTRAINED

    retrying = asyncio.create_task(slots.apply_until_loaded(event, stop))
    async with Collector(settings, MODEL_RETRAIN) as idle:  # polls the broker: a wait with a deadline
        await idle.until(lambda _: slots.waiting == "v1", timeout_s=10)
        own_redis.start()
        await idle.until(lambda _: retrying.done(), timeout_s=30)
    assert slots.champion.version == "v1" and slots.waiting is None and slots.refused == []
    assert slots.champion.model.score({"amount": 10.0}) == model.score({"amount": 10.0})
    await client.aclose()


async def test_a_sha_mismatch_is_still_refused_for_good(settings, own_redis):
    client = aioredis.Redis.from_url(own_redis.url)
    store = RedisArtifactStore(client, settings.redis_prefix)
    blob, sha = dump(FraudModel())
    slots = ModelSlots(settings, store)
    await slots.apply_until_loaded(champion(await store.put("v1", blob[:-1]), sha), asyncio.Event())
    assert slots.refused == ["v1"] and slots.champion.version == UNTRAINED
    await client.aclose()


class IdleWriter:
    """On idle, writes to its Redis and then announces that it did (once)."""

    def __init__(self, redis: aioredis.Redis, target: str):
        self.redis, self.target = redis, target
        self.attempts, self.done = 0, False

    async def __call__(self, batch):
        return []

    async def on_idle(self) -> list[Out]:
        if self.done:
            return []
        self.attempts += 1
        await self.redis.set("idle-writer", "wrote")
        self.done = True
        request = RetrainRequested(request_id="idle-1", reason="idle work done")
        return [Out(self.target, b"idle-1", encode(request))]


async def test_idle_time_work_is_retried_like_a_batch(settings, own_redis, start_service):
    client = aioredis.Redis.from_url(own_redis.url)
    handler = IdleWriter(client, settings.topic(MODEL_RETRAIN))

    @asynccontextmanager
    async def build(clients, svc_settings, stop):
        yield handler

    own_redis.stop()
    spec = ServiceSpec("idle-writer", (MODEL_RETRAIN,), build)
    task = start_service(lambda s, stop: run_service(spec, s, stop))
    async with Collector(settings, MODEL_RETRAIN) as seen:
        await seen.until(lambda _: handler.attempts >= 2, timeout_s=20)  # failed, and tried again
        assert not task.done()
        own_redis.start()
        await seen.until(lambda c: len(c.of(MODEL_RETRAIN)) == 1, timeout_s=30)
    assert await client.get("idle-writer") == b"wrote" and not task.done()
    await client.aclose()
