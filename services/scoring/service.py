"""scoring wiring: enriched transactions in; scores, alerts and shadow scores out."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord

from services.model.artifacts import make_store
from services.model.reasons import explain_many
from services.scoring.models import ModelSlots, Slot
from shared import health, metrics
from shared.boundary import dispatch
from shared.codec import encode
from shared.events import Alert, EnrichedTransaction, Score
from shared.kafka import Out
from shared.runner import Clients, Inbound, ServiceSpec, run_service
from shared.settings import Settings
from shared.topics import ALERTS, MODEL_VERSIONS, SCORES, SCORES_SHADOW, TRANSACTIONS_ENRICHED

SERVICE = "scoring"


def decide(score: float, settings: Settings) -> str:
    """
    >>> s = Settings(review_threshold=0.5, decline_threshold=0.9)
    >>> decide(0.2, s), decide(0.5, s), decide(0.95, s)
    ('approve', 'review', 'decline')
    """
    if score >= settings.decline_threshold:
        return "decline"
    return "review" if score >= settings.review_threshold else "approve"


def severity(score: float, threshold: float) -> str:
    """The alert band: the range above the alert threshold cut in four.

    >>> [severity(s, 0.8) for s in (0.8, 0.86, 0.91, 0.99)]
    ['low', 'medium', 'high', 'critical']
    """
    band = int(4 * (score - threshold) / max(1e-9, 1 - threshold))
    return ("low", "medium", "high", "critical")[min(max(band, 0), 3)]


class Scoring:
    def __init__(self, settings: Settings, slots: ModelSlots):
        self.settings = settings
        self.slots = slots
        self.topics = {t: settings.topic(t) for t in (SCORES, SCORES_SHADOW, ALERTS)}
        self.routes = {TRANSACTIONS_ENRICHED: self.on_enriched}
        self._batch: list[tuple[ConsumerRecord, EnrichedTransaction]] = []

    def _scores(self, slot: Slot, batch: list[tuple[ConsumerRecord, EnrichedTransaction]], with_reasons: bool):
        xs = [e.features for _, e in batch]
        values = slot.model.score_many(xs)
        explained = explain_many(slot.model, xs, self.settings.reasons_top_k) if with_reasons else [[]] * len(xs)
        scored_at = time.time()
        for (record, enriched), value, reasons in zip(batch, values, explained):
            tx = enriched.transaction
            yield record, enriched, Score(
                tx_id=tx.tx_id, card_id=tx.card_id, ts=tx.ts, score=value, decision=decide(value, self.settings),
                model_version=slot.version, reasons=reasons, stages=enriched.stages | {"scored": scored_at},
            )

    def on_enriched(self, item: Inbound[EnrichedTransaction]) -> None:
        self._batch.append((item.record, item.event))

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        self._batch = []
        outs = dispatch(self.routes, batch)
        collected, self._batch = self._batch, []  # what the route took from the batch
        champion, challenger = self.slots.champion, self.slots.challenger  # one swap-safe snapshot
        for record, enriched, score in self._scores(champion, collected, with_reasons=True):
            outs.append(Out(self.topics[SCORES], record.key, encode(score), record.timestamp))
            if "received" in score.stages:
                metrics.END_TO_END_SECONDS.observe(score.stages["scored"] - score.stages["received"])
            if score.score >= self.settings.alert_threshold:
                outs.append(Out(self.topics[ALERTS], record.key, encode(alert(enriched, score, self.settings))))
        if challenger is not None and self.settings.shadow_scoring:
            for record, _, score in self._scores(challenger, collected, with_reasons=False):
                outs.append(Out(self.topics[SCORES_SHADOW], record.key, encode(score), record.timestamp))
        return outs


def alert(enriched: EnrichedTransaction, score: Score, settings: Settings) -> Alert:
    tx = enriched.transaction
    return Alert(
        tx_id=tx.tx_id, card_id=tx.card_id, merchant_id=tx.merchant_id, ts=tx.ts, amount=tx.amount,
        currency=tx.currency, country=tx.country, channel=tx.channel, score=score.score,
        severity=severity(score.score, settings.alert_threshold), decision=score.decision,
        model_version=score.model_version, reasons=score.reasons,
    )


@asynccontextmanager
async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
    """The models follow ``model.versions`` in the background; scoring starts once they caught up."""
    slots = ModelSlots(settings, make_store(settings, clients.redis))
    ready = asyncio.Event()
    health.add_check("scoring model", lambda: ready.is_set() or "still reading model.versions")
    follower = asyncio.create_task(slots.follow(stop, ready))
    await asyncio.wait({follower, asyncio.ensure_future(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if follower.done():
        follower.result()  # the follower failed before catching up: surface why
    try:
        yield Scoring(settings, slots)
    finally:
        stop.set()
        await follower


SPEC = ServiceSpec(SERVICE, (TRANSACTIONS_ENRICHED,), build, follows=(MODEL_VERSIONS,))


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(SPEC, settings, stop)
