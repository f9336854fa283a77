"""Dedup by tx_id in Redis without ever losing an event.

Each id is claimed with ``SET NX`` whose value is the claiming record's own
``topic:partition:offset``. A redelivery of that same record (a crash before the offset
commit) reads back its own origin and is published again — downstream is idempotent —
while a re-sent copy from a producer reads somebody else's origin and is a duplicate.
All claims of a batch go in one pipeline: one round trip per batch.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.redis import key
from shared.settings import Settings


class Deduplicator:
    def __init__(self, redis: aioredis.Redis, settings: Settings):
        self.redis = redis
        self.settings = settings

    async def claim(self, claims: list[tuple[str, str, str]]) -> list[bool]:
        """``(kind, tx_id, origin)`` → True where this origin owns the id (publish it)."""
        if not claims:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for kind, tx_id, origin in claims:
            k = key(self.settings, "tx", tx_id, f"seen-{kind}")
            pipe.set(k, origin, nx=True, ex=self.settings.dedup_ttl_s)
            pipe.get(k)
        replies = await pipe.execute()
        return [owner == origin.encode() for owner, (_, _, origin) in zip(replies[1::2], claims)]
