"""ingest wiring: raw bytes in, valid events or dead letters out, one Redis round trip a batch."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from shared.codec import encode
from shared.events import utcnow
from shared.kafka import Out
from shared.runner import Clients, dead_letter, run_service
from shared.settings import Settings
from shared.topics import LABELS, LABELS_RAW, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from services.ingest.dedup import Deduplicator
from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction

SERVICE = "ingest"


class Ingest:
    def __init__(self, settings: Settings, dedup: Deduplicator):
        self.settings = settings
        self.dedup = dedup
        self.limits = Limits.from_settings(settings)
        self.routes = {
            settings.topic(TRANSACTIONS_RAW): ("tx", parse_transaction, settings.topic(TRANSACTIONS_VALID)),
            settings.topic(LABELS_RAW): ("label", parse_label, settings.topic(LABELS)),
        }

    async def __call__(self, records: list[ConsumerRecord]) -> list[Out]:
        now = utcnow()
        outs, accepted = [], []
        for record in records:
            kind, parse, target = self.routes[record.topic]
            try:
                accepted.append((record, target, parse(record.value, self.limits, now), kind))
            except Rejected as exc:
                outs.append(dead_letter(self.settings, SERVICE, record, str(exc)))
        owned = await self.dedup.claim(
            [(kind, event.tx_id, f"{r.topic}:{r.partition}:{r.offset}") for r, _, event, kind in accepted]
        )
        for (record, target, event, _), first in zip(accepted, owned):
            if first:
                # The raw record's timestamp travels on: it marks when the event entered the system.
                outs.append(Out(target, event.card_id.encode(), encode(event), record.timestamp))
            else:
                reason = f"duplicate: tx_id {event.tx_id} was already accepted"
                outs.append(dead_letter(self.settings, SERVICE, record, reason))
        return outs


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(
        SERVICE,
        settings,
        (TRANSACTIONS_RAW, LABELS_RAW),
        lambda c: Ingest(settings, Deduplicator(c.redis, settings)),
        stop,
    )
