"""``fraudstream up``: the local stack, every service as its own process, simulated traffic,
and a live view of what comes out (alerts as they happen, a summary line every few seconds)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

from shared.codec import DecodeError, decode
from shared.events import Score
from shared.kafka import make_consumer
from shared.settings import Settings
from fraudstream.stack import LocalStack
from shared.topics import ALERTS, DEADLETTER, MODEL_VERSIONS, SCORES, TOPICS, DRIFT_EVENTS, TRANSACTIONS_VALID
from fraudstream.console import line
from fraudstream.processes import start_services, stop_services
from fraudstream.simulator.publish import Progress, publish
from fraudstream.simulator.traffic import SimulatorConfig

DEMO_ENV = {"FRAUDSTREAM_PUBLISH_EVERY_S": "10", "FRAUDSTREAM_PUBLISH_EVERY_LABELS": "200"}
WATCHED = (TRANSACTIONS_VALID, SCORES, ALERTS, DEADLETTER, MODEL_VERSIONS, DRIFT_EVENTS)
LOUD = {ALERTS, MODEL_VERSIONS, DRIFT_EVENTS, DEADLETTER}
"""Topics whose every event is printed; the others are counted."""


class LiveView:
    """Reads the output topics and prints what an operator wants to see."""

    def __init__(self, settings: Settings, emit=print):
        self.settings, self.emit = settings, emit
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.model = "untrained"
        self.decisions: Counter[str] = Counter()

    async def run(self, stop: asyncio.Event) -> None:
        consumer = make_consumer(self.settings, *WATCHED, group=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            while not stop.is_set():
                for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                    topic = tp.topic.removeprefix(self.settings.topic_prefix)
                    for record in batch:
                        self.observe(topic, record)
        finally:
            await consumer.stop()

    def observe(self, topic: str, record) -> None:
        self.counts[topic] += 1
        try:
            event = decode(record.value, TOPICS[topic].event)
        except DecodeError:
            return
        if topic == SCORES and isinstance(event, Score):
            self.decisions[event.decision] += 1
            self.model = event.model_version
            if "received" in event.stages:
                self.latencies.append(time.time() - event.stages["received"])
        if topic in LOUD:
            self.emit(line(event))

    def summary(self, progress: Progress) -> str:
        lat = sorted(self.latencies[-5000:])
        pct = (lambda q: f"{1000 * lat[min(len(lat) - 1, int(q * len(lat)))]:.0f}") if lat else (lambda q: "-")
        c = self.counts
        return (f"[{progress.elapsed_s:5.0f}s] sent {progress.transactions} tx ({progress.frauds} fraud), "
                f"{progress.labels} labels, {progress.corrupted} bad | valid {c[TRANSACTIONS_VALID]} scored {c[SCORES]} "
                f"({self.decisions['decline']} decline, {self.decisions['review']} review) alerts {c[ALERTS]} "
                f"dead {c[DEADLETTER]} | latency p50 {pct(0.5)} ms p99 {pct(0.99)} ms | model {self.model}")


async def run_demo(base: Settings, services: list[str], config: SimulatorConfig, rate: float,
                   duration_s: float | None, external: bool, stop_demo: asyncio.Event, emit=print) -> None:
    stack = None if external else LocalStack(base).start()
    settings = base if stack is None else stack.settings
    env = stack.env() if stack is not None else dict(os.environ)
    # A demo should show versions within seconds; the user's own settings still win.
    env = DEMO_ENV | env
    logdir = (stack.workdir if stack is not None else Path("."))
    emit(f"broker {settings.kafka_bootstrap}, redis {settings.redis_url}; service logs in {logdir}/")
    procs = start_services(services, env, logdir)
    stop = asyncio.Event()
    view = LiveView(settings, emit)
    viewer = asyncio.create_task(view.run(stop))
    last = [0.0]

    def tick(progress: Progress) -> None:
        if progress.elapsed_s - last[0] >= 3:
            last[0] = progress.elapsed_s
            emit(view.summary(progress))
            for p, name in zip(procs, services):
                if p.poll() is not None:
                    raise RuntimeError(f"service {name} exited with {p.returncode}; see {logdir}/{name}.log")

    try:
        progress = await publish(settings, config, rate, stop_demo, duration_s=duration_s, on_tick=tick,
                                 bad_share=0.01)
        emit(view.summary(progress))
        if progress.caught_up:
            emit("the simulated clock caught up with the real one; stopping")
    finally:
        emit("stopping: services first (they commit), then the local stack")
        stop.set()
        await viewer
        stop_services(procs)  # before the broker: a client whose broker is gone cannot close
        if stack is not None:
            stack.stop()
