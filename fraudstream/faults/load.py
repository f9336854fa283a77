"""Load: a seeded simulated stream sent at a steady rate, labels a couple of wall seconds
after their transaction (event time compressed), through the raw topics like any producer.

The whole stream is built before it is sent, so a run knows exactly what went in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from fraudstream.bench.workload import send_all  # noqa: F401  (re-exported: the poison burst and the fuzzer send with it)
from fraudstream.simulator.publish import anchored
from fraudstream.simulator.traffic import Emission, SimulatorConfig, simulate, time_scale
from shared.codec import encode
from shared.events import Label, Transaction
from shared.kafka import Out, Sender, make_producer
from shared.settings import Settings
from shared.topics import LABELS_RAW, TRANSACTIONS_RAW

TICK_S = 0.02


@dataclass
class Workload:
    """A stream of ``n`` transactions (and their labels) to send at ``rate`` per second."""

    n: int
    rate: float
    emissions: list[Emission]
    scale: float
    """Event seconds per wall second."""

    @classmethod
    def build(cls, n: int, rate: float, seed: int = 11, n_cards: int = 300, n_merchants: int = 60,
              label_after_s: float = 2.0, label_share: float = 0.3, fraud_rate: float = 0.02) -> Workload:
        base = SimulatorConfig(seed=seed, n_cards=n_cards, n_merchants=n_merchants, fraud_rate=fraud_rate,
                               label_genuine=True, genuine_label_share=label_share, label_delay_sigma=0.3)
        scale = time_scale(base, rate)
        config = base.model_copy(update={"label_delay_mean": timedelta(seconds=label_after_s * scale)})
        config = anchored(config, rate, n / rate)
        return cls(n, rate, list(simulate(config, n)), scale)

    @property
    def transactions(self) -> list[Transaction]:
        return [e.event for e in self.emissions if isinstance(e.event, Transaction)]

    @property
    def labels(self) -> list[Label]:
        return [e.event for e in self.emissions if isinstance(e.event, Label)]

    def records(self) -> list[Out]:
        """Each emission as the raw record a producer sends (topic names without prefix)."""
        return [Out(e.topic, e.event.card_id.encode(), encode(e.event)) for e in self.emissions]


@dataclass
class Sent:
    records: int = 0
    started: float = field(default_factory=time.monotonic)


async def send_paced(settings: Settings, workload: Workload, start: int = 0, stop_at: int | None = None,
                     on_tick: Callable[[Sent], None] | None = None, stop: asyncio.Event | None = None) -> Sent:
    """Send emissions ``start:stop_at`` in event-time order at the workload's pace."""
    return await send_stream(settings, iter(workload.emissions[start:stop_at]), workload.scale, on_tick, stop)


async def send_stream(settings: Settings, emissions: Iterator[Emission], scale: float,
                      on_tick: Callable[[Sent], None] | None = None, stop: asyncio.Event | None = None) -> Sent:
    """Send a (possibly endless) stream at ``scale`` event seconds per wall second."""
    producer = make_producer(settings)
    await producer.start()
    sender, sent = Sender(producer), Sent()
    pending = next(emissions, None)
    try:
        if pending is None:
            return sent
        t0 = pending.at
        while pending is not None and not (stop and stop.is_set()):
            due = t0 + timedelta(seconds=(time.monotonic() - sent.started) * scale)
            batch = []
            while pending is not None and pending.at <= due:
                batch.append(Out(settings.topic(pending.topic), pending.event.card_id.encode(), encode(pending.event)))
                pending = next(emissions, None)
            if batch:
                await sender.send(batch)
                sent.records += len(batch)
            if on_tick is not None:
                on_tick(sent)
            await asyncio.sleep(TICK_S)
    finally:
        await producer.stop()
    return sent


RAW_TOPICS = (TRANSACTIONS_RAW, LABELS_RAW)
