"""Labels that wait for their transaction's feature vector.

A label is the training signal and is never re-sent. When it reaches the learner before
its transaction's vector exists (features restarting or behind, Redis away), it waits:
kept in Redis with the record it came in (``P:{card:C}:learner:waiting``, tx_id → origin
and bytes, hash-tagged by card) and indexed by deadline (``P:learner:waiting``). The learner
also reads ``transactions.enriched``: when the transaction arrives, its label is learned
from the vector it carries. A label still waiting after ``label_wait_s`` (at most the
feature TTL) is dead-lettered with the record it came in.

Redis forgets a learned label only once a snapshot holding it is published (offsets are
committed then), and an expired one once its dead letter is acknowledged: a restart in
between reloads it and meets it again.
"""

from __future__ import annotations

import base64
import time
from typing import cast

import orjson
from aiokafka import ConsumerRecord

from services.learner.seen import EnrichedSeen
from shared.boundary import dead_letter
from shared.codec import decode
from shared.events import Label
from shared.kafka import Out
from shared.redis import AsyncRedis
from shared.settings import Settings

SERVICE = "learner"
EXPIRED_PER_CHECK = 1000
CHECK_EVERY_S = 1.0


class WaitingLabels:
    def __init__(self, settings: Settings, redis: AsyncRedis):
        self.settings, self.redis = settings, redis
        self.index_key = f"{settings.redis_prefix}:learner:waiting"
        self.wait_s = min(settings.label_wait_s, settings.feature_ttl_s)
        self.waiting: dict[str, str] = {}
        """tx_id → card_id of every label waiting (mirrors the Redis index)."""
        self._learned: set[tuple[str, str]] = set()  # learned since the last snapshot
        self._expired: set[tuple[str, str]] = set()  # dead-lettered, letters not yet acknowledged
        self._letters: list[Out] = []  # ... and those letters: a retried batch sends them again
        self._forget: set[tuple[str, str]] = set()  # to drop from Redis
        self._next_check = 0.0

    def _key(self, card_id: str) -> str:
        return f"{self.settings.redis_prefix}:{{card:{card_id}}}:learner:waiting"

    async def resume(self) -> None:
        """The labels still waiting when the learner stopped."""
        # our clients never decode responses: members are bytes (redis-py types any reply)
        for member in cast(list[bytes], await self.redis.zrange(self.index_key, 0, -1)):
            card_id, tx_id = member.decode().split("|", 1)
            self.waiting[tx_id] = card_id

    async def hold(self, labels: list[tuple[ConsumerRecord, Label]]) -> None:
        """Keep labels whose vector is not there yet; a label held again keeps its first deadline."""
        if not labels:
            return
        deadline = time.time() + self.wait_s
        pipe = self.redis.pipeline(transaction=False)
        for record, label in labels:
            origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                      "key": _b64(record.key), "value": _b64(record.value)}
            pipe.hset(self._key(label.card_id), label.tx_id, orjson.dumps(origin))
            pipe.expire(self._key(label.card_id), int(self.wait_s) + 3600)
            pipe.zadd(self.index_key, {f"{label.card_id}|{label.tx_id}": deadline}, nx=True)
            self.waiting[label.tx_id] = label.card_id
        await pipe.execute()

    def arrived(self, enriched: EnrichedSeen) -> bool:
        """Whether a label waits for this transaction (it is claimed: matched once)."""
        return self.waiting.pop(enriched.transaction.tx_id, None) is not None

    async def labels_of(self, arrived: list[EnrichedSeen]) -> list[tuple[Label, EnrichedSeen]]:
        """The waiting labels of transactions that just arrived, each with its transaction."""
        if not arrived:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for enriched in arrived:
            pipe.hget(self._key(enriched.transaction.card_id), enriched.transaction.tx_id)
        found = []
        for enriched, raw in zip(arrived, await pipe.execute()):
            if raw is not None:  # gone: learned and forgotten by an earlier run
                found.append((decode(base64.b64decode(orjson.loads(raw)["value"]), Label), enriched))
        return found

    def learned(self, labels: list[Label], waited: bool) -> None:
        """Learned labels: those that waited (``waited``, or still indexed: a replayed label
        that found its vector) are forgotten once a snapshot holds them."""
        for label in labels:
            if self.waiting.pop(label.tx_id, None) is not None or waited:
                self._learned.add((label.card_id, label.tx_id))

    async def expired(self) -> list[Out]:
        """Dead letters for the labels whose wait is over (checked at most every second), and
        those not acknowledged yet."""
        now = time.time()
        if now < self._next_check:
            return list(self._letters)
        self._next_check = now + CHECK_EVERY_S
        members = cast(list[bytes], await self.redis.zrangebyscore(self.index_key, "-inf", now, start=0,
                                                                   num=EXPIRED_PER_CHECK))
        pairs = [tuple(m.decode().split("|", 1)) for m in members]
        pairs = [p for p in pairs if p not in self._expired and p not in self._forget]
        if not pairs:
            return list(self._letters)
        pipe = self.redis.pipeline(transaction=False)
        for card_id, tx_id in pairs:
            pipe.hget(self._key(card_id), tx_id)
        outs = self._letters
        for (card_id, tx_id), raw in zip(pairs, await pipe.execute()):
            self.waiting.pop(tx_id, None)
            self._expired.add((card_id, tx_id))
            if raw is None:
                continue  # its record expired with the card's key: nothing left to dead-letter
            origin = orjson.loads(raw)
            record = ConsumerRecord(origin["topic"], origin["partition"], origin["offset"], 0, 0,
                                    _bytes(origin["key"]), _bytes(origin["value"]), None, 0, 0, [])
            reason = (f"unknown or expired tx_id: no stored features for {tx_id} on card {card_id} "
                      f"after waiting {self.wait_s:.0f} s")
            outs.append(dead_letter(self.settings, SERVICE, record, reason))
        return list(outs)

    def acknowledged(self, published: bool) -> None:
        """The runner acknowledged a batch's outputs; ``published``: a snapshot among them."""
        self._forget |= self._expired
        self._expired, self._letters = set(), []
        if published:
            self._forget |= self._learned
            self._learned = set()

    async def forget(self) -> None:
        if not self._forget:
            return
        pipe = self.redis.pipeline(transaction=False)
        for card_id, tx_id in self._forget:
            pipe.hdel(self._key(card_id), tx_id)
        pipe.zrem(self.index_key, *(f"{c}|{t}" for c, t in self._forget))
        await pipe.execute()
        self._forget = set()


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
