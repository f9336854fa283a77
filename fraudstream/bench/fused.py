"""The stronger yardstick: the scoring path fused into one process, a batch at a time.

What a user would write instead of our services, doing the same work on each
transaction: ingest's validation (``parse_transaction``), the real features
(``FeatureStore.apply``, one round trip per batch), the model's batched scores and the
reasons scoring attaches, one ``Score`` encoded per transaction, through the services' own
loop (``shared/runner.py``: ``getmany`` → ``Sender`` → acks → commit). It skips what a
single process does not need: three broker hops, the dedup set (its feature updates are
apply-once by tx_id anyway), labels, learner and monitor. The pipeline's share of its
rate is the price of running as separate services.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord

from services.features.store import FeatureStore, Refused
from services.ingest.validate import Limits, Rejected, parse_transaction
from services.model.fraud_model import FraudModel
from services.model.reasons import explain_many
from services.scoring.service import decide
from shared.codec import encode
from shared.events import Score, Transaction, utcnow
from shared.kafka import Out
from shared.runner import Inbound, ServiceSpec, dead_letter, run_service
from shared.settings import Settings
from shared.topics import SCORES, TRANSACTIONS_RAW

SERVICE = "bench-fused"


class FusedScoring:
    """Validate, featurise, score and explain a whole consumed batch."""

    def __init__(self, settings: Settings, store: FeatureStore):
        self.settings, self.store = settings, store
        self.limits = Limits.from_settings(settings)
        self.model = FraudModel(genuine_rate=settings.genuine_sample_rate)
        self.target = settings.topic(SCORES)
        self.warm = False

    def _warm_up(self, xs: list[dict[str, float]]) -> None:
        """Give the model weights once, from the first vectors, with every 13th called fraud:
        an untrained model has no reasons to give, and the yardstick must pay for them as
        scoring does. (What it learns does not matter here; its cost per score does.)"""
        for i, x in enumerate(xs):
            self.model.learn(x, i % 13 == 0)
        self.warm = bool(xs)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        outs, valid = [], []
        now = utcnow()
        for item in batch:
            try:
                valid.append((item.record, parse_transaction(item.record.value, self.limits, now)))
            except Rejected as exc:
                outs.append(dead_letter(self.settings, SERVICE, item.record, str(exc)))
        applied = await self.store.apply([tx for _, tx in valid])
        scored: list[tuple[ConsumerRecord, Transaction, dict[str, float]]] = []
        for (record, tx), result in zip(valid, applied):
            if isinstance(result, Refused):  # too late for its card's windows, as features says
                outs.append(dead_letter(self.settings, SERVICE, record, result.reason))
            else:
                scored.append((record, tx, result.features))
        xs = [x for _, _, x in scored]
        if not self.warm:
            self._warm_up(xs)
        values = self.model.score_many(xs)
        explained = explain_many(self.model, xs, self.settings.reasons_top_k)
        scored_at = time.time()
        for (record, tx, _), value, reasons in zip(scored, values, explained):
            score = Score(tx_id=tx.tx_id, card_id=tx.card_id, ts=tx.ts, score=value,
                          decision=decide(value, self.settings), model_version="fused", reasons=reasons,
                          stages={"scored": scored_at})
            outs.append(Out(self.target, record.key, encode(score), record.timestamp))
        return outs


@asynccontextmanager
async def _fusing(clients, settings: Settings, stop: asyncio.Event):
    yield FusedScoring(settings, FeatureStore(clients.redis, settings))


async def fused(settings: Settings, stop: asyncio.Event) -> None:
    # raw: it validates producers' bytes itself, like ingest
    await run_service(ServiceSpec(SERVICE, (TRANSACTIONS_RAW,), _fusing, raw=True), settings, stop)
