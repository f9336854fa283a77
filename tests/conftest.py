"""Fixtures: a real broker and a real Redis for the whole run, fresh topics for each test.

The stack is started by the project itself (``fraudstream.stack.LocalStack``): a Tansu broker
on a free port and the Redis on 127.0.0.1:6379 if one answers, else a redis-server of
our own. Each test gets its own topic prefix and Redis key prefix, so tests never see
each other's data and runs never collide.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from fraudstream.stack import LocalStack
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.kafka_helpers import delete_prefix


@pytest.fixture(scope="session")
def stack():
    # batch refits off unless a test asks (tests/integration/test_batch_challenger.py): a stream over a
    # day would otherwise add scheduled verdicts to the exact expectations of every learner test
    base = Settings(session_timeout_ms=2000, heartbeat_interval_ms=500, fetch_max_wait_ms=10, partitions=2,
                    batch_refit_every_s=0)
    with LocalStack(base) as running:
        yield running


@pytest.fixture(scope="session")
def redis_url(stack) -> str:
    return stack.settings.redis_url


@pytest.fixture
async def settings(stack) -> Settings:
    run = uuid.uuid4().hex[:10]
    s = stack.settings.model_copy(update={"topic_prefix": f"t{run}.", "redis_prefix": f"fstest-{run}"})
    await ensure_topics(s)
    yield s
    r = aioredis.Redis.from_url(s.redis_url)
    await delete_prefix(r, s.redis_prefix)
    await r.aclose()


@pytest.fixture
async def redis_client(settings):
    client = aioredis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def start_service(settings):
    """Start a service's ``run(settings, stop)`` as a task; every one is stopped at teardown."""
    stops, tasks = [], []

    def start(run, svc_settings: Settings | None = None) -> asyncio.Task:
        stop = asyncio.Event()
        task = asyncio.create_task(run(svc_settings or settings, stop))
        stops.append(stop)
        tasks.append(task)
        return task

    yield start
    for stop in stops:
        stop.set()
    for task in tasks:
        if task.done() and task.exception():
            raise task.exception()
        await asyncio.wait_for(task, timeout=30)
