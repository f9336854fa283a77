"""Retrain requests waiting for labels since a drift, kept in Redis until answered.

A request with ``since`` (the drift's start) waits until the window holds
``retrain_min_labels_since_drift`` labels and ``retrain_min_frauds_since_drift`` frauds of
transactions from then on: asked at detection, it would find almost none, since labels come a
label delay after their transactions. One still waiting when the event clock is twice
``label_maturity_s`` past ``since`` is answered anyway (and refused by the retrain): every
label of the first maturity period is in by then, explicit or matured, so too few means too
little traffic to tell. A request without ``since`` is due at once.

A periodic snapshot commits offsets past a request while it still waits, so the queue is
kept in Redis and reloaded at start-up; a request leaves Redis once its verdict is sent
(``sent``), and a crash in between answers it twice: at least once, like every input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import cast

from services.learner.retrain import Example
from shared.codec import DecodeError, decode, encode
from shared.events import RetrainRequested
from shared.redis import AsyncRedis
from shared.settings import Settings

log = logging.getLogger(__name__)


class RetrainQueue:
    def __init__(self, settings: Settings, redis: AsyncRedis):
        self.settings, self.redis = settings, redis
        self.key = f"{settings.redis_prefix}:learner:retrain-queue"
        self.queued: dict[str, RetrainRequested] = {}
        """Requests waiting, by request_id, oldest first."""
        self._answered: list[str] = []  # answered in this batch, verdict not yet sent
        self._sent: list[str] = []  # ... and sent: to drop from Redis

    async def resume(self) -> None:
        """The requests still waiting when the learner stopped."""
        # our clients never decode responses: values are bytes (redis-py types any reply)
        for raw in cast(dict[bytes, bytes], await self.redis.hgetall(self.key)).values():
            try:
                request = decode(raw, RetrainRequested)
            except DecodeError as exc:
                log.error("dropping an unreadable queued retrain request: %s", exc)
                continue
            self.queued[request.request_id] = request
        self.queued = dict(sorted(self.queued.items(), key=lambda item: item[1].requested_at))
        for request in self.queued.values():
            log.info("retrain %s still queued: labels since %s", request.request_id, request.since)

    async def add(self, requests: list[RetrainRequested], recent: Iterable[Example]) -> None:
        """Queue the batch's requests; one already queued (re-read after a restart) is queued once."""
        fresh = {r.request_id: r for r in requests if r.request_id not in self.queued}
        waiting = {i: r for i, r in fresh.items() if r.since is not None}
        if waiting:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.key, mapping={i: encode(r) for i, r in waiting.items()})
            pipe.expire(self.key, int(2 * self.settings.label_maturity_s))
            await pipe.execute()
        recent = list(recent) if waiting else []
        for request in waiting.values():
            log.info("retrain %s by %s queued: %s", request.request_id, request.requested_by,
                     self.lacking(request, recent) or "enough labels since the drift already")
        self.queued.update(fresh)

    def due(self, recent: Iterable[Example], clock: float) -> list[RetrainRequested]:
        """The requests to answer now, oldest first (``clock``: the event time, epoch s)."""
        due, recent = [], list(recent) if self.queued else []
        for request_id, request in list(self.queued.items()):
            if request.since is not None:
                expired = clock - request.since.timestamp() > 2 * self.settings.label_maturity_s
                if self.lacking(request, recent) and not expired:
                    continue
                log.info("retrain %s runs: %d labels, %d frauds since %s", request_id,
                         *since(request.since, recent), request.since)
                self._answered.append(request_id)
            due.append(self.queued.pop(request_id))
        return due

    def lacking(self, request: RetrainRequested, recent: list[Example]) -> str | None:
        """What a request with ``since`` still waits for in the window (None: nothing)."""
        if request.since is None:
            return None
        (labels, frauds), settings = since(request.since, recent), self.settings
        if labels >= settings.retrain_min_labels_since_drift and frauds >= settings.retrain_min_frauds_since_drift:
            return None
        return (f"{labels} labels, {frauds} frauds since {request.since:%Y-%m-%d %H:%M:%S} (needs "
                f"{settings.retrain_min_labels_since_drift} and {settings.retrain_min_frauds_since_drift})")

    def sent(self) -> None:
        """The verdicts answered so far are acknowledged (the runner asks after each batch)."""
        self._sent, self._answered = self._sent + self._answered, []

    async def forget_sent(self) -> None:
        """Drop from Redis the requests whose verdicts were sent."""
        if self._sent:
            await self.redis.hdel(self.key, *self._sent)
            self._sent = []


def since(start: datetime, recent: list[Example]) -> tuple[int, int]:
    """Labels and frauds in the window of transactions from ``start`` on (a request's ``since``)."""
    start_s = start.timestamp()
    kept = [e.is_fraud for e in recent if e.ts >= start_s]
    return len(kept), sum(kept)
