"""Redis plumbing: one client factory, and key names with hash tags for Redis Cluster."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.settings import Settings


def make_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        health_check_interval=30,
        socket_keepalive=True,
    )


def key(settings: Settings, entity: str, entity_id: str, *parts: str) -> str:
    """A key hash-tagged by its entity, so one entity's keys share a Cluster slot.

    >>> key(Settings(redis_prefix="fs"), "card", "c1", "tx")
    'fs:{card:c1}:tx'
    """
    return ":".join((settings.redis_prefix, f"{{{entity}:{entity_id}}}", *parts))
