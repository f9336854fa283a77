"""Publish simulated traffic like any external producer: JSON on the raw topics, paced.

The simulated clock runs ``time_scale`` times faster than the wall clock (a day of a
10 000-card population in minutes), and starts far enough in the past that the run,
with the labels that follow its last transactions, ends about now: ingest refuses events
from the future, so the publisher stops when the simulated clock catches up with the real one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fraudstream.simulator.traffic import SimulatorConfig, simulate, time_scale
from shared.codec import encode
from shared.events import utcnow
from shared.kafka import Out, Sender, make_producer
from shared.settings import Settings

FOREVER_SPAN = timedelta(days=390)
"""An endless run starts this far back (inside ingest's default 400-day age limit)."""
LABEL_TAIL = 4
"""A bounded run leaves this many mean label delays after its last transaction."""
TICK_S = 0.02


def corrupt(event_bytes: bytes, rng: random.Random) -> bytes:
    """What real producers get wrong: a re-send, broken bytes, an impossible amount...

    >>> corrupt(b'{"amount":5.0}', random.Random(1))
    b'{"amoun'
    """
    kind = rng.randrange(5)
    if kind == 0:
        return event_bytes  # the same transaction sent twice
    if kind == 1:
        return event_bytes[: len(event_bytes) // 2]  # truncated JSON
    if kind == 2:
        return event_bytes.replace(b'"amount":', b'"amount":-', 1)
    if kind == 3:
        return b"\xff\xfe" + event_bytes  # not UTF-8
    return event_bytes.replace(b'"currency":"', b'"currency":"X', 1)  # unknown currency


@dataclass
class Progress:
    transactions: int = 0
    labels: int = 0
    frauds: int = 0
    started: float = 0.0
    corrupted: int = 0
    caught_up: bool = False
    """The simulated clock reached the real one: later events would be from the future."""

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


def anchored(config: SimulatorConfig, rate: float, duration_s: float | None) -> SimulatorConfig:
    """The same world, with its clock started so the run ends around now."""
    scale = time_scale(config, rate)
    if duration_s is None:
        span = FOREVER_SPAN
    else:
        span = min(FOREVER_SPAN, timedelta(seconds=duration_s * scale) + LABEL_TAIL * config.label_delay_mean)
    return config.model_copy(update={"start": utcnow() - span})


async def publish(
    settings: Settings,
    config: SimulatorConfig,
    rate: float,
    stop: asyncio.Event,
    n_transactions: int | None = None,
    duration_s: float | None = None,
    on_tick: Callable[[Progress], None] | None = None,
    bad_share: float = 0.0,
) -> Progress:
    """Publish at ``rate`` transactions per wall second until done, ``stop``, or the clock catches up.

    A bounded run (``n_transactions`` or ``duration_s``) also publishes the labels of its
    transactions that fall due before the real clock. ``bad_share`` of the transactions
    are followed by a corrupted copy (see :func:`corrupt`), to show dead-lettering.
    """
    rng = random.Random(config.seed)
    if duration_s is not None and n_transactions is None:
        n_transactions = max(1, int(duration_s * rate))
    if n_transactions is not None:
        duration_s = n_transactions / rate
    config = anchored(config, rate, duration_s)
    scale = time_scale(config, rate)
    producer = make_producer(settings)
    await producer.start()
    sender, progress = Sender(producer), Progress(started=time.monotonic())
    stream = simulate(config, n_transactions)
    pending = next(stream, None)
    try:
        while pending is not None and not stop.is_set():
            # Everything whose simulated time has come, in one batch per tick.
            due_event_time = config.start + timedelta(seconds=progress.elapsed_s * scale)
            if pending.at > utcnow():
                progress.caught_up = True
                break
            batch: list[Out] = []
            while pending is not None and pending.at <= due_event_time and pending.at <= utcnow():
                out = Out(settings.topic(pending.topic), pending.event.card_id.encode(), encode(pending.event))
                batch.append(out)
                if pending.topic.startswith("transactions"):
                    progress.transactions += 1
                    progress.frauds += pending.fraud_pattern is not None
                    if bad_share and rng.random() < bad_share:
                        batch.append(Out(out.topic, out.key, corrupt(out.value, rng)))
                        progress.corrupted += 1
                else:
                    progress.labels += 1
                pending = next(stream, None)
            await sender.send(batch)
            if on_tick is not None:
                on_tick(progress)
            await asyncio.sleep(TICK_S)
    finally:
        await producer.stop()
    return progress
