"""Dedup by tx_id in Redis without ever losing an event.

Each id is claimed with ``SET NX`` whose value is the claiming record's own
``topic:partition:offset``. A redelivery of that same record (a crash before the offset
commit) reads back its own origin and is published again — downstream is idempotent —
while a re-sent copy from a producer reads somebody else's origin and is a duplicate.
A batch is one script call (one per Cluster slot under Redis Cluster), in one round trip.
"""

from __future__ import annotations

from pathlib import Path

from shared.redis import AsyncRedis, key, slot_groups
from shared.settings import Settings

SCRIPT = (Path(__file__).parent / "dedup.lua").read_text()


class Deduplicator:
    def __init__(self, redis: AsyncRedis, settings: Settings):
        self.settings = settings
        self.script = redis.register_script(SCRIPT)
        self.redis = redis

    async def claim(self, claims: list[tuple[str, str, str]]) -> list[bool]:
        """``(kind, tx_id, origin)`` → True where this origin owns the id (publish it)."""
        keys = [key(self.settings, "tx", tx_id, f"seen-{kind}") for kind, tx_id, _ in claims]
        groups = slot_groups(self.settings, keys)
        pipe = self.redis.pipeline(transaction=False)
        for group in groups:
            # redis-py queues a script on a pipeline, a Cluster one too, but types only clients
            await self.script(keys=[keys[i] for i in group], args=[self.settings.dedup_ttl_s,
                              *(claims[i][2] for i in group)], client=pipe)  # type: ignore[arg-type]
        owned = [False] * len(claims)
        for group, replies in zip(groups, await pipe.execute() if groups else []):
            for i, reply in zip(group, replies):
                owned[i] = reply == 1
        return owned
