"""``fraudstream bench STAGE``: throughput and latency of the services on a real stack.

Two runs per stage, each with the services as separate processes (as deployed):

* **throughput**: a backlog of N simulated transactions is loaded onto
  ``transactions.raw`` first, then the services start and drain it; the rate is output
  events over the time from the first to the last output (group join excluded);
* **latency**: the services already running, transactions are published at a fixed
  offered load; latency is the time from the producer's timestamp on
  ``transactions.raw`` to the arrival of the stage's output at a consumer.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from shared.codec import encode
from shared.kafka import Out, Sender, make_consumer, make_producer
from shared.settings import Settings
from shared.topics import SCORES, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from services.demo import start_services, stop_services
from services.simulator.publish import anchored
from services.simulator.traffic import SimulatorConfig, simulate

STAGES = {
    "ingest": (("ingest",), TRANSACTIONS_VALID),
    "features": (("ingest", "features"), TRANSACTIONS_ENRICHED),
    "pipeline": (("ingest", "features", "scoring"), SCORES),
    "scoring": (("scoring",), SCORES),
}


@dataclass
class Figures:
    stage: str
    events: int
    throughput_per_s: float
    cpu_s_per_service: dict[str, float]
    offered_per_s: float
    latency_ms: dict[str, float]
    cores: int = os.cpu_count() or 0

    def lines(self) -> list[str]:
        cpu = ", ".join(f"{k} {v:.1f}s" for k, v in self.cpu_s_per_service.items())
        lat = " ".join(f"{k} {v:.1f}" for k, v in self.latency_ms.items())
        return [
            f"stage {self.stage} on {self.cores} cores (broker, Redis and services on this machine)",
            f"  throughput: {self.throughput_per_s:,.0f} events/s draining {self.events:,} transactions (CPU: {cpu})",
            f"  latency at {self.offered_per_s:,.0f} events/s offered, ms: {lat}",
        ]


def payloads(n: int, rate_hint: float, seed: int = 11) -> list[Out]:
    """N encoded simulated transactions, stamped so ingest accepts them now."""
    config = anchored(SimulatorConfig(seed=seed, n_cards=20_000, n_merchants=2_000, label_genuine=False),
                      rate_hint, n / rate_hint)
    return [Out(TRANSACTIONS_RAW, e.event.card_id.encode(), encode(e.event))
            for e in simulate(config, n) if e.topic == TRANSACTIONS_RAW]


def enriched_payloads(n: int, rate_hint: float) -> list[Out]:
    """N enriched transactions (features from the reference implementation), for the
    scoring stage alone."""
    from services.features.reference import ReferenceFeatures
    from shared.events import EnrichedTransaction, Transaction

    reference = ReferenceFeatures()
    config = anchored(SimulatorConfig(seed=11, n_cards=20_000, n_merchants=2_000, label_genuine=False),
                      rate_hint, n / rate_hint)
    outs = []
    for e in simulate(config, n):
        if isinstance(e.event, Transaction):
            r = reference.apply(e.event)
            enriched = EnrichedTransaction(transaction=e.event, features=r.features, feature_set_version="bench",
                                           freshness_s=r.freshness_s)
            outs.append(Out(TRANSACTIONS_ENRICHED, e.event.card_id.encode(), encode(enriched)))
    return outs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def send_all(settings: Settings, outs: list[Out], chunk: int = 5000) -> None:
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        sender = Sender(producer)
        for i in range(0, len(outs), chunk):
            await sender.send([Out(settings.topic(o.topic), o.key, o.value) for o in outs[i: i + chunk]])
    finally:
        await producer.stop()


class OutputCounter:
    """Counts a topic's records from a position fixed before any load is sent."""

    def __init__(self, settings: Settings, topic: str, from_end: bool):
        self.consumer = make_consumer(settings, topic, group=None,
                                      auto_offset_reset="latest" if from_end else "earliest")
        self.from_end = from_end
        self.first = self.last = 0.0
        self.seen = 0
        self.latencies: list[float] = []

    async def start(self) -> "OutputCounter":
        await self.consumer.start()
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)  # resolve "latest" now, before the load starts
        if self.from_end:
            # The first fetch of a new consumer is slow; pay for it before the load, not in it.
            await self._take(await self.consumer.getmany(timeout_ms=500))
        return self

    async def _take(self, polled) -> None:
        for batch in polled.values():
            now = time.time()
            self.first = self.first or now
            self.last = now
            self.seen += len(batch)
            self.latencies.extend(now - r.timestamp / 1000 for r in batch)

    async def until(self, expected: int, timeout_s: float) -> "OutputCounter":
        deadline = time.monotonic() + timeout_s
        try:
            while self.seen < expected and time.monotonic() < deadline:
                await self._take(await self.consumer.getmany(timeout_ms=100, max_records=10_000))
        finally:
            await self.consumer.stop()
        return self


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}": 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 95, 99)}


async def run_bench(settings: Settings, env: dict[str, str], logdir: Path, stage: str, n: int,
                    offered: float, latency_s: float) -> Figures:
    services, output = STAGES[stage]
    m = int(offered * latency_s)
    # One stream: the backlog, then the paced tail, so event time only moves forward.
    stream = (enriched_payloads if stage == "scoring" else payloads)(n + m, rate_hint=offered)
    backlog, tail = stream[:n], stream[n:]
    await send_all(settings, backlog)
    procs = start_services(list(services), env, logdir)
    try:
        drained = await (await OutputCounter(settings, output, from_end=False).start()).until(n, 60 + n / 500)
        cpu = {name: cpu_seconds(p.pid) for name, p in zip(services, procs)}
        span = drained.last - drained.first
        throughput = (drained.seen - 1) / span if span > 0 else 0.0
        # Latency at a fixed offered load, on the same running services.
        counter = await OutputCounter(settings, output, from_end=True).start()
        waiting = asyncio.create_task(counter.until(m, 60 + latency_s))
        await paced(settings, tail, offered)
        await waiting
    finally:
        stop_services(procs)
    return Figures(stage, drained.seen, throughput, cpu, offered, percentiles(counter.latencies))


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
