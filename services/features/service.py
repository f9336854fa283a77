"""features wiring: valid transactions in, point-in-time feature vectors out.

A batch's labels go to the store first, except those of a transaction in the same batch,
which follow the transactions so that they find its stored vector: at most three Redis
round trips per batch, one when it holds no labels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord

from services.features.store import FeatureStore, Refused
from shared import metrics
from shared.boundary import Route, dispatch
from shared.codec import encode
from shared.events import EnrichedTransaction, Label, Transaction
from shared.kafka import Out
from shared.runner import Clients, Inbound, ServiceSpec, dead_letter, run_service
from shared.settings import Settings
from shared.topics import LABELS, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID

SERVICE = "features"
INPUTS = (TRANSACTIONS_VALID, LABELS)
log = logging.getLogger(__name__)


class Features:
    def __init__(self, settings: Settings, store: FeatureStore):
        self.settings = settings
        self.store = store
        self.enriched_topic = settings.topic(TRANSACTIONS_ENRICHED)
        self.routes: dict[str, Route] = {TRANSACTIONS_VALID: self.on_transaction, LABELS: self.on_label}
        self._txs: list[tuple[ConsumerRecord, Transaction]] = []  # the batch's, collected by the routes
        self._labels: list[Label] = []

    def on_transaction(self, item: Inbound[Transaction]) -> None:
        self._txs.append((item.record, item.event))

    def on_label(self, item: Inbound[Label]) -> None:
        self._labels.append(item.event)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        self._txs, self._labels = [], []
        outs = dispatch(self.routes, batch)
        txs, labels = self._txs, self._labels
        # A label's fraud counts only for transactions with ts >= labelled_at (the store keeps
        # it by labelled_at), so applying it before this batch's transactions is exact and
        # lets them see it; only a label of a transaction in this same batch has to wait for
        # that transaction's stored vector.
        batch_ids = {tx.tx_id for _, tx in txs}
        later = [label for label in labels if label.tx_id in batch_ids]
        await self._apply_labels([label for label in labels if label.tx_id not in batch_ids])
        # the store judges lateness against each card's own newest event (the windows it
        # protects), so one producer's clock cannot make other cards' transactions late
        results = await self.store.apply([tx for _, tx in txs])
        enriched_at = time.time()
        for (record, tx), result in zip(txs, results):
            if isinstance(result, Refused):  # too late for windows its card already read
                outs.append(dead_letter(self.settings, SERVICE, record, result.reason))
                continue
            event = EnrichedTransaction(
                transaction=tx,
                features=result.features,
                feature_set_version=result.feature_set_version,
                freshness_s=result.freshness_s,
                stages={"received": record.timestamp / 1000, "enriched": enriched_at},
            )
            outs.append(Out(self.enriched_topic, record.key, encode(event), record.timestamp))
        await self._apply_labels(later)
        return outs

    async def _apply_labels(self, labels: list[Label]) -> None:
        if labels:
            unmatched = [reason for reason in await self.store.apply_labels(labels) if reason]
            if unmatched:
                # The label stays on `labels`; the learner, which needs the join, waits for its vector.
                metrics.LABELS_UNMATCHED.labels(SERVICE).inc(len(unmatched))


@asynccontextmanager
async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
    yield Features(settings, FeatureStore(clients.redis, settings))


SPEC = ServiceSpec(SERVICE, INPUTS, build, first=(LABELS,))


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(SPEC, settings, stop)
