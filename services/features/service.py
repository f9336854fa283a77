"""features wiring: valid transactions in, point-in-time feature vectors out.

A batch's transactions go to the store first (one Redis round trip), then its labels,
so a label for a transaction of the same batch finds the transaction's stored vector.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from aiokafka import ConsumerRecord

from shared import metrics
from shared.codec import DecodeError, decode, encode
from shared.events import EnrichedTransaction, Label, Transaction
from shared.kafka import Out
from shared.runner import dead_letter, run_service
from shared.settings import Settings
from shared.topics import LABELS, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from services.features.store import FeatureStore, Watermark

SERVICE = "features"
log = logging.getLogger(__name__)


class Features:
    def __init__(self, settings: Settings, store: FeatureStore):
        self.settings = settings
        self.store = store
        self.valid_topic = settings.topic(TRANSACTIONS_VALID)
        self.enriched_topic = settings.topic(TRANSACTIONS_ENRICHED)
        # Event-time watermark per input partition: a transaction far behind it is too
        # late to land in windows that later transactions have already read.
        self.watermarks: dict[int, Watermark] = defaultdict(lambda: Watermark(settings.max_lateness_s))

    async def __call__(self, records: list[ConsumerRecord]) -> list[Out]:
        outs: list[Out] = []
        txs: list[tuple[ConsumerRecord, Transaction]] = []
        late: list[bool] = []
        labels: list[Label] = []
        for record in records:
            try:
                if record.topic == self.valid_topic:
                    tx = decode(record.value, Transaction)
                    watermark = self.watermarks[record.partition]
                    late.append(watermark.is_too_late(tx.ts))
                    watermark.observe(tx.ts)
                    txs.append((record, tx))
                else:
                    labels.append(decode(record.value, Label))
            except DecodeError as exc:
                outs.append(dead_letter(self.settings, SERVICE, record, f"malformed: {exc}"))
        results = await self.store.apply([tx for _, tx in txs], late)
        enriched_at = time.time()
        for (record, tx), result in zip(txs, results):
            if result is None:  # late and never applied: its windows were already read
                reason = self.watermarks[record.partition].reason(tx.ts)
                outs.append(dead_letter(self.settings, SERVICE, record, reason))
                continue
            event = EnrichedTransaction(
                transaction=tx,
                features=result.features,
                feature_set_version=result.feature_set_version,
                freshness_s=result.freshness_s,
                stages={"received": record.timestamp / 1000, "enriched": enriched_at},
            )
            outs.append(Out(self.enriched_topic, record.key, encode(event), record.timestamp))
        if labels:
            unmatched = [reason for reason in await self.store.apply_labels(labels) if reason]
            if unmatched:
                # The label stays on `labels`; the learner, which needs the join, dead-letters it.
                metrics.LABELS_UNMATCHED.labels(SERVICE).inc(len(unmatched))
        return outs


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(
        SERVICE,
        settings,
        (TRANSACTIONS_VALID, LABELS),
        lambda c: Features(settings, FeatureStore(c.redis, settings)),
        stop,
    )
