"""What the bench sends: endless simulated streams, a backlog taken from one, and pacing.

A stream is one endless sequence of encoded producer records in event-time order; a run
takes its backlog from the front and its paced tail from what follows, so event time only
moves forward across the two phases.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Iterator

from shared.codec import encode
from shared.events import EnrichedTransaction, utcnow
from shared.kafka import Out, Sender, make_producer
from shared.settings import Settings
from shared.topics import LABELS_RAW, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW
from fraudstream.simulator.traffic import SimulatorConfig, simulate

WORLD = SimulatorConfig(seed=11, n_cards=20_000, n_merchants=2_000, label_delay_mean=timedelta(hours=2))
"""Labels come two hours of event time after their transaction: seconds of wall time at
bench rates, so they flow during a run (the simulator's default is days)."""
EVENT_SPAN = timedelta(days=60)
"""A stream starts this far back in event time and ends before now (ingest refuses the
future): room for ~3 M transactions of this world."""
SAMPLE_EVERY_S = 0.25


def _emissions(with_labels: bool):
    config = WORLD.model_copy(update={"start": utcnow() - EVENT_SPAN, "label_genuine": with_labels})
    return (e for e in simulate(config) if with_labels or e.topic == TRANSACTIONS_RAW)


def raw_stream(with_labels: bool = False) -> Iterator[Out]:
    """Endless encoded simulated producer records (transactions, and labels if asked)."""
    for e in _emissions(with_labels):
        yield Out(e.topic, e.event.card_id.encode(), encode(e.event))


def enriched_stream() -> Iterator[Out]:
    """Endless enriched transactions (features from the reference implementation), for
    the scoring stage alone."""
    from services.features.reference import ReferenceFeatures

    reference = ReferenceFeatures()
    for e in _emissions(with_labels=False):
        r = reference.apply(e.event)
        enriched = EnrichedTransaction(transaction=e.event, features=r.features, feature_set_version="bench",
                                       freshness_s=r.freshness_s)
        yield Out(TRANSACTIONS_ENRICHED, e.event.card_id.encode(), encode(enriched))


def take(stream: Iterator[Out], transactions: int) -> list[Out]:
    """The stream's next records up to its ``transactions``-th transaction (labels ride along)."""
    outs, seen = [], 0
    while seen < transactions:
        outs.append(next(stream))
        seen += outs[-1].topic != LABELS_RAW
    return outs


async def send_all(settings: Settings, outs: list[Out], chunk: int = 5000) -> None:
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        sender = Sender(producer)
        for i in range(0, len(outs), chunk):
            await sender.send([Out(settings.topic(o.topic), o.key, o.value) for o in outs[i: i + chunk]])
    finally:
        await producer.stop()


async def paced(settings: Settings, outs: list[Out], rate: float, tick_s: float = 0.01) -> None:
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        sender, started, sent = Sender(producer), time.monotonic(), 0
        while sent < len(outs):
            due = min(len(outs), int((time.monotonic() - started) * rate) + 1)
            if due > sent:
                await sender.send([Out(settings.topic(o.topic), o.key, o.value) for o in outs[sent:due]])
                sent = due
            await asyncio.sleep(tick_s)
    finally:
        await producer.stop()
