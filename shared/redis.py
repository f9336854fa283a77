"""Redis plumbing: the client factory, hash-tagged key names, and batched script calls.

redis-py spends ~35–60 µs of CPU on every command of a pipeline, so a batch of events
should be a few commands, not one per event: scripts here take many events per call, all
calls of a batch in one pipeline. A script may only touch keys of one Cluster slot, so under
Redis Cluster (``FRAUDSTREAM_REDIS_CLUSTER=true``) a batch is split by slot too.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeAlias
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.cluster import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared.settings import Settings

log = logging.getLogger(__name__)

# A single Redis or a Cluster (``FRAUDSTREAM_REDIS_CLUSTER``): redis-py gives the two no common
# base class, though both answer the commands and pipelines we use.
AsyncRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
AsyncPipeline: TypeAlias = aioredis.client.Pipeline | aioredis.cluster.ClusterPipeline
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster


def client_options(settings: Settings) -> dict:
    """Credentials and TLS files for every Redis client (asyncio or not, single or Cluster).

    >>> client_options(Settings(redis_password="p"))["password"]
    'p'
    >>> sorted(client_options(Settings(redis_url="rediss://r:6380/0", redis_ssl_cafile="/ca.pem")))
    ['ssl_ca_certs']
    """
    password = settings.redis_password
    options: dict = dict(
        username=settings.redis_username,
        password=password.get_secret_value() if password is not None else None,
    )
    if settings.redis_url.startswith("rediss://"):
        options |= dict(
            ssl_ca_certs=_str(settings.redis_ssl_cafile),
            ssl_certfile=_str(settings.redis_ssl_certfile),
            ssl_keyfile=_str(settings.redis_ssl_keyfile),
        )
    # Credentials written into the URL itself stay in force unless set here too.
    return {k: v for k, v in options.items() if v is not None}


def _str(path) -> str | None:
    return str(path) if path is not None else None


def make_redis(settings: Settings) -> AsyncRedis:
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url, **client_options(settings))
    return aioredis.Redis.from_url(settings.redis_url, health_check_interval=30, socket_keepalive=True,
                                   **client_options(settings))


def make_sync_redis(settings: Settings, timeout_s: float = 1.0) -> SyncRedis:
    """A blocking client for threads outside the event loop (the health server's PING)."""
    options = client_options(settings) | dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, **options)


async def wait_for_redis(settings: Settings, client: AsyncRedis) -> None:
    """PING until Redis answers, retrying (with a log line) for up to ``startup_wait_s``."""

    def waiting(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None  # tenacity sets both before a sleep
        log.warning("waiting for Redis at %s: %s; retrying in %.1fs, giving up after %gs", address(settings.redis_url),
                    state.outcome.exception(), state.next_action.sleep, settings.startup_wait_s)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((RedisConnectionError, RedisTimeoutError, OSError)),
        stop=stop_after_delay(settings.startup_wait_s),
        wait=wait_exponential(multiplier=0.5, max=10),
        before_sleep=waiting,
        reraise=True,
    ):
        with attempt:
            await client.ping()


def address(url: str) -> str:
    """Host and port of a Redis URL, for log lines (never its credentials).

    >>> address("redis://user:secret@cache.internal:6380/0")
    'cache.internal:6380'
    """
    parsed = urlsplit(url)
    return f"{parsed.hostname}:{parsed.port or 6379}"


def key(settings: Settings, entity: str, entity_id: str, *parts: str) -> str:
    """A key hash-tagged by its entity, so one entity's keys share a Cluster slot.

    >>> key(Settings(redis_prefix="fs"), "card", "c1", "tx")
    'fs:{card:c1}:tx'
    """
    return ":".join((settings.redis_prefix, f"{{{entity}:{entity_id}}}", *parts))


def slot_groups(settings: Settings, first_keys: Sequence[str]) -> list[list[int]]:
    """Indexes of items that may share one script call: all of them on a single Redis,
    those whose keys hash to the same slot under Cluster.

    >>> slot_groups(Settings(), ["fs:{a}:x", "fs:{b}:x", "fs:{a}:y"])
    [[0, 1, 2]]
    >>> slot_groups(Settings(redis_cluster=True), ["fs:{a}:x", "fs:{b}:x", "fs:{a}:y"])
    [[0, 2], [1]]
    """
    if not settings.redis_cluster:
        return [list(range(len(first_keys)))] if first_keys else []
    groups: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(first_keys):
        groups[key_slot(k.encode())].append(i)
    return list(groups.values())
