"""Implicit genuine labels: a sampled transaction with no label after ``label_maturity_s``.

Fraud is labelled (chargebacks, analysts); genuine transactions mostly never are. The
sampled ones wait in a Redis sorted set scored by event time; an explicit label takes its
transaction out, and the event-time clock (the newest transaction seen) matures the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from services.learner.seen import EnrichedSeen
from services.learner.trainer import sampled
from shared.events import Label
from shared.redis import AsyncRedis
from shared.settings import Settings

MATURED_PER_BATCH = 2000


class Maturity:
    def __init__(self, settings: Settings, redis: AsyncRedis):
        self.settings, self.redis = settings, redis
        self.key = f"{settings.redis_prefix}:learner:pending"
        self.watermark = 0.0
        """The newest transaction event time seen, epoch seconds: the learner's event clock."""
        self._new: dict[str, float] = {}  # noted since the last flush: card_id|tx_id → ts

    def note(self, enriched: EnrichedSeen) -> None:
        tx = enriched.transaction
        ts = tx.ts.timestamp()
        self.watermark = max(self.watermark, ts)
        if sampled(tx.tx_id, self.settings.genuine_sample_rate):
            self._new[f"{tx.card_id}|{tx.tx_id}"] = ts

    async def flush(self, labelled: list[Label]) -> None:
        """Store the noted transactions; the explicitly labelled ones wait no more."""
        pipe = self.redis.pipeline(transaction=False)
        if self._new:
            pipe.zadd(self.key, self._new, nx=True)
        if labelled:
            pipe.zrem(self.key, *(f"{lb.card_id}|{lb.tx_id}" for lb in labelled))
        if pipe:
            pipe.expire(self.key, int(self.settings.label_maturity_s + self.settings.feature_ttl_s))
            await pipe.execute()
        self._new = {}

    async def matured(self) -> list[Label]:
        """Genuine labels for the transactions that waited ``label_maturity_s`` of event time."""
        cutoff = self.watermark - self.settings.label_maturity_s
        # our clients never decode responses: members are bytes (redis-py types any reply)
        members = cast(list[bytes], await self.redis.zrangebyscore(self.key, "-inf", cutoff, start=0,
                                                                   num=MATURED_PER_BATCH))
        if not members:
            return []
        await self.redis.zrem(self.key, *members)
        now = datetime.now(UTC)
        pairs = [m.decode().split("|", 1) for m in members]  # card_id|tx_id
        return [Label(tx_id=tx_id, card_id=card_id, is_fraud=False, labelled_at=now, source="maturity")
                for card_id, tx_id in pairs]
