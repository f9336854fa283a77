"""ingest wiring: raw bytes in, valid events or dead letters out, one Redis round trip a batch.

Ingest is the one service that takes undecoded records (``raw=True``): producers' bytes
are checked for size before they are parsed, and each refusal says why.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord

from services.ingest.dedup import Claims, Deduplicator
from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction
from shared.boundary import dispatch
from shared.codec import encode
from shared.events import Label, Transaction, utcnow
from shared.kafka import Out
from shared.runner import Clients, Inbound, ServiceSpec, dead_letter, run_service
from shared.settings import Settings
from shared.topics import LABELS, LABELS_RAW, TRANSACTIONS_RAW, TRANSACTIONS_VALID

SERVICE = "ingest"
INPUTS = (TRANSACTIONS_RAW, LABELS_RAW)


class Ingest:
    def __init__(self, settings: Settings, dedup: Claims):
        self.settings = settings
        self.dedup = dedup
        self.limits = Limits.from_settings(settings)
        self.targets = {t: settings.topic(t) for t in (TRANSACTIONS_VALID, LABELS)}
        self.routes = {TRANSACTIONS_RAW: self.on_transaction, LABELS_RAW: self.on_label}
        self._accepted: list[tuple[ConsumerRecord, str, Transaction | Label, str]] = []
        self._now = utcnow()  # one clock reading per batch: every event of it is judged alike

    def on_transaction(self, item: Inbound) -> list[Out]:
        return self._parse(item, "tx", parse_transaction, TRANSACTIONS_VALID)

    def on_label(self, item: Inbound) -> list[Out]:
        return self._parse(item, "label", parse_label, LABELS)

    def _parse(self, item: Inbound, kind: str, parse, target: str) -> list[Out]:
        try:
            event = parse(item.record.value, self.limits, self._now)
        except Rejected as exc:
            return [dead_letter(self.settings, SERVICE, item.record, str(exc))]
        self._accepted.append((item.record, self.targets[target], event, kind))
        return []

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        self._now, self._accepted = utcnow(), []
        outs = dispatch(self.routes, batch)
        accepted, self._accepted = self._accepted, []
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


@asynccontextmanager
async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
    yield Ingest(settings, Deduplicator(clients.redis, settings))


SPEC = ServiceSpec(SERVICE, INPUTS, build, raw=True, first=(LABELS_RAW,))


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(SPEC, settings, stop)
