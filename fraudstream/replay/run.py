"""``fraudstream replay``: a historical file through the real pipeline, in event time.

The events of :mod:`fraudstream.replay.source` go to ``transactions.raw`` and ``labels.raw``
like any producer's, in event-time order, and the services (ingest, features, scoring,
learner) do the rest. Two rules keep the replay faithful to event time while it runs as
fast as the pipeline can take it:

* at most ``max_in_flight`` transactions are sent and not yet scored (or dead-lettered), so
  the scoring position stays close to the producer's;
* a label is sent only once its transaction has been scored: in the live system a label
  comes days later, long after its transaction's features were stored, and the learner
  refuses a label it cannot join.

The scores are read back from ``scores`` (the first copy of each: at-least-once delivery)
and transactions refused on the way are counted from the dead-letter topic with their reasons.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from fraudstream.replay.source import Event, Source
from shared.kafka import Out, Sender, make_consumer, make_producer, skip_to_end
from shared.settings import Settings
from shared.topics import DEADLETTER, LABELS_RAW, SCORES, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW, TRANSACTIONS_VALID

TX_TOPICS = (TRANSACTIONS_RAW, TRANSACTIONS_VALID, TRANSACTIONS_ENRICHED)
"""A dead letter from one of these is a transaction that will never be scored."""


@dataclass
class Outcome:
    scores: dict[str, tuple[float, str]] = field(default_factory=dict)
    """tx_id → (score, model version) of the first score seen."""
    refused: Counter[str] = field(default_factory=Counter)
    """Reason (up to the colon) → transactions dead-lettered on the way."""
    labels_refused: Counter[str] = field(default_factory=Counter)
    refused_ids: set[str] = field(default_factory=set)
    sent_tx: int = 0
    sent_labels: int = 0
    wall_s: float = 0.0

    @property
    def done(self) -> int:
        return len(self.scores) + sum(self.refused.values())


class _Reader:
    """Scores and dead letters, from the ends of the topics as they were before sending."""

    def __init__(self, settings: Settings, outcome: Outcome, on_change: Callable[[Outcome], None] | None):
        self.settings, self.outcome, self.on_change = settings, outcome, on_change
        self.consumer = make_consumer(settings, SCORES, DEADLETTER, group=None, auto_offset_reset="latest")
        self.scores_topic, self.dead_topic = settings.topic(SCORES), settings.topic(DEADLETTER)
        self.tx_topics = {settings.topic(t) for t in TX_TOPICS}
        self.changed = asyncio.Event()

    async def start(self) -> None:
        await self.consumer.start()
        await skip_to_end(self.consumer)  # before anything is sent: an older score of the same tx_id is not ours

    async def run(self) -> None:
        scores, out = self.outcome.scores, self.outcome
        while True:
            polled = await self.consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, batch in polled.items():
                if tp.topic == self.scores_topic:
                    for r in batch:
                        s = orjson.loads(r.value)  # scoring wrote it from the schema: no re-validation
                        scores.setdefault(s["tx_id"], (s["score"], s["model_version"]))
                    continue
                for r in batch:
                    letter = orjson.loads(r.value)
                    reason = letter["error"].split(":", 1)[0]
                    if letter["topic"] in self.tx_topics:
                        out.refused[reason] += 1
                        tx_id = _tx_id(letter["payload"])
                        if tx_id:
                            out.refused_ids.add(tx_id)
                    else:
                        out.labels_refused[reason] += 1
            if polled:
                self.changed.set()
                if self.on_change:
                    self.on_change(self.outcome)

    async def wait(self, ready: Callable[[], bool], stalled_s: float) -> bool:
        """Until ``ready()``; False when nothing came back for ``stalled_s``."""
        while not ready():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), stalled_s)
            except TimeoutError:
                return ready()
        return True


def _tx_id(payload_b64: str) -> str | None:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(payload_b64))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return value.get("tx_id") if isinstance(value, dict) else None


async def replay(settings: Settings, source: Source, *, max_in_flight: int = 20_000, chunk: int = 2_000,
                 stalled_s: float = 60.0, on_progress: Callable[[Outcome], None] | None = None) -> Outcome:
    """Send every event of ``source`` and wait until each transaction is scored or refused.

    Raises TimeoutError when the pipeline gives nothing back for ``stalled_s`` (a service is
    down or behind a stuck partition): the message says how far the replay got.
    """
    outcome, begun = Outcome(), time.monotonic()
    reader = _Reader(settings, outcome, on_progress)
    await reader.start()
    reading = asyncio.create_task(reader.run())
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    tx_topic, label_topic = settings.topic(TRANSACTIONS_RAW), settings.topic(LABELS_RAW)
    scored = outcome.scores

    def handled(tx_id: str) -> bool:
        return tx_id in scored or tx_id in outcome.refused_ids

    async def wait(ready: Callable[[], bool], what: str) -> None:
        if not await reader.wait(ready, stalled_s):
            raise TimeoutError(f"nothing came back for {stalled_s:g}s while waiting for {what}: "
                               f"{outcome.sent_tx:,} transactions sent, {len(scored):,} scored, "
                               f"{sum(outcome.refused.values()):,} refused")

    try:
        sender = Sender(producer)

        async def send(part: list[Event]) -> None:
            await wait(lambda: outcome.sent_tx - outcome.done < max_in_flight, "the pipeline to catch up")
            labels = [e.tx_id for e in part if e.kind == "label"]
            if labels:
                await wait(lambda: all(handled(t) for t in labels), "the scores of labelled transactions")
            await sender.send([Out(tx_topic if e.kind == "tx" else label_topic, e.card_id.encode(), e.value)
                               for e in part])
            outcome.sent_labels += len(labels)
            outcome.sent_tx += len(part) - len(labels)

        # A part never holds a label together with its own transaction: the label has to wait
        # for that transaction's score, so the part is cut before it.
        part: list[Event] = []
        part_tx: set[str] = set()
        for event in source.events:
            if len(part) >= chunk or (event.kind == "label" and event.tx_id in part_tx):
                await send(part)
                part, part_tx = [], set()
            part.append(event)
            if event.kind == "tx":
                part_tx.add(event.tx_id)
        if part:
            await send(part)
        await wait(lambda: outcome.done >= outcome.sent_tx, "the last scores")
    finally:
        await producer.stop()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await reader.consumer.stop()
    outcome.wall_s = time.monotonic() - begun
    return outcome
