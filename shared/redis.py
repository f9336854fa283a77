"""Redis plumbing: the client factory, hash-tagged key names, and batched script calls.

redis-py spends ~35–60 µs of CPU on every command of a pipeline, so a batch of events
should be a few commands, not one per event: scripts here take a whole batch in one call.
A script may only touch keys of one Cluster slot, so under Redis Cluster
(``FRAUDSTREAM_REDIS_CLUSTER=true``) a batch is split into one call per slot; on a single
Redis it is one call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import redis.asyncio as aioredis
from redis.cluster import key_slot

from shared.settings import Settings


def make_redis(settings: Settings) -> aioredis.Redis:
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url)
    return aioredis.Redis.from_url(settings.redis_url, health_check_interval=30, socket_keepalive=True)


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
