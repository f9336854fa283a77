"""What the demo shows while it runs: the output topics read live, as an operator reads them.

Model versions, drift events and retrain requests are printed one by one, and the first
few alerts of each interval with their reasons (the rest counted); scores
and valid transactions are counted; dead letters are summarised by kind once per interval,
with the first example of each kind shown once (a steady trickle of bad input must not
drown the rest). The status line also says how the alerts do on the latest labelled
transactions (precision and recall at the alert threshold): what falls after a drift and
comes back after a promotion. The model on the status line is the champion announced on
``model.versions``, not the version of the latest score (scores lag behind a swap).

>>> digest = DeadLetterDigest()
>>> digest.kind_of("malformed: not UTF-8: invalid start byte at byte 0")
'malformed: not UTF-8'
>>> digest.kind_of("duplicate: tx_id tx-7-1 was already accepted")
'duplicate'
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque

from aiokafka import ConsumerRecord

from fraudstream.console import line
from shared.codec import DecodeError, decode
from shared.events import DeadLetter, DriftDetected, Label, ModelVersionPublished, Score
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import (
    ALERTS,
    DEADLETTER,
    DRIFT_EVENTS,
    LABELS,
    MODEL_RETRAIN,
    MODEL_VERSIONS,
    SCORES,
    TOPICS,
    TRANSACTIONS_VALID,
)

WATCHED = (TRANSACTIONS_VALID, SCORES, ALERTS, DEADLETTER, MODEL_VERSIONS, DRIFT_EVENTS, MODEL_RETRAIN, LABELS)
LOUD = {MODEL_VERSIONS, MODEL_RETRAIN}
"""Topics whose every event is printed; the others are counted (dead letters: summarised)."""
ALERTS_SHOWN = 4
"""Alerts printed per status interval (with their reasons); the rest are counted."""
OUTCOMES = 500
"""Labelled transactions the status line's precision and recall are measured on (the latest)."""
SCORES_KEPT = 200_000
DRIFTS_SHOWN = 3
"""Drift events printed per interval: many features cross together; the rest are named."""


class DeadLetterDigest:
    """Dead letters by kind: the error up to its second colon ('malformed: not JSON'), or
    its first part when it has no detail that names a kind ('duplicate')."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.interval: Counter[str] = Counter()

    @staticmethod
    def kind_of(error: str) -> str:
        parts = [p.strip() for p in error.split(":")]
        return ": ".join(parts[:2]) if len(parts) > 2 else parts[0]

    def add(self, letter: DeadLetter) -> str | None:
        """Count it; the first letter of a kind comes back as an example line to print."""
        kind = self.kind_of(letter.error)
        first = kind not in self.total
        self.total[kind] += 1
        self.interval[kind] += 1
        if not first:
            return None
        return f"{line(letter)}\n           (first of its kind: {kind}; more are counted, not printed)"

    def summary(self) -> str | None:
        """One line for the interval just ended (None when nothing was dead-lettered)."""
        if not self.interval:
            return None
        parts = ", ".join(f"{kind} {n}" for kind, n in self.interval.most_common())
        self.interval = Counter()
        return f"           dead letters: {parts} (total {sum(self.total.values())}; `fraudstream deadletter list`)"


class LiveView:
    """Reads the output topics and prints what an operator wants to see."""

    def __init__(self, settings: Settings, emit=print):
        self.settings, self.emit = settings, emit
        self.counts: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=5000)
        """Seconds from ingest to score of the latest scores."""
        self.champion = "none"
        self.decisions: Counter[str] = Counter()
        self.dead = DeadLetterDigest()
        self.alerts_shown = 0
        self.alerts_unshown = 0
        self.drifts_shown = 0
        self.drifts_unshown: list[str] = []
        self.champion_ap: float | None = None
        self.alerted: OrderedDict[str, bool] = OrderedDict()
        """tx_id → whether its score reached the alert threshold, until its label comes."""
        self.outcomes: deque[tuple[bool, bool]] = deque(maxlen=OUTCOMES)
        """(alerted, fraud) of the latest labelled transactions: how the alerts are doing."""
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        # From the beginning: the warm champion was announced before the view started.
        consumer = make_consumer(self.settings, *WATCHED, group=None, auto_offset_reset="earliest")
        wait = FetchWait("live", consumer, self.settings.fetch_max_wait_ms)
        try:
            await consumer.start()
            self.started.set()
            while not stop.is_set():
                for tp, batch in (await wait.poll(timeout_ms=200)).items():
                    topic = tp.topic.removeprefix(self.settings.topic_prefix)
                    for record in batch:
                        self.observe(topic, record)
        finally:
            self.started.set()
            await consumer.stop()

    def observe(self, topic: str, record: ConsumerRecord) -> None:
        self.counts[topic] += 1
        try:
            event = decode(record.value, TOPICS[topic].event)
        except DecodeError as exc:
            self.emit(f"?? {topic}@{record.offset}: {exc}")
            return
        if isinstance(event, Score):
            self.decisions[event.decision] += 1
            self.alerted[event.tx_id] = event.score >= self.settings.alert_threshold
            if len(self.alerted) > SCORES_KEPT:
                self.alerted.popitem(last=False)
            if "received" in event.stages:
                self.latencies.append(time.time() - event.stages["received"])
        elif isinstance(event, ModelVersionPublished) and event.status == "champion":
            self.champion = event.version
            self.champion_ap = event.metrics.get("average_precision")
        elif topic == ALERTS:
            if self.alerts_shown < ALERTS_SHOWN:
                self.alerts_shown += 1
                self.emit(line(event))
            else:
                self.alerts_unshown += 1
        elif isinstance(event, DriftDetected):
            if self.drifts_shown < DRIFTS_SHOWN:
                self.drifts_shown += 1
                self.emit(line(event))
            else:
                self.drifts_unshown.append(f"{event.kind}/{event.feature}" if event.feature else event.kind)
        elif isinstance(event, Label):
            alerted = self.alerted.pop(event.tx_id, None)
            if alerted is not None:
                self.outcomes.append((alerted, event.is_fraud))
        elif isinstance(event, DeadLetter):
            example = self.dead.add(event)
            if example:
                self.emit(example)
        if topic in LOUD:
            self.emit(line(event))

    def status(self, elapsed_s: float, sent: int, labels: int, bad: int) -> list[str]:
        """The status line, and the dead-letter line of the interval when there is one."""
        lat = sorted(self.latencies)
        pct = (lambda q: f"{1000 * lat[min(len(lat) - 1, int(q * len(lat)))]:.0f}") if lat else (lambda q: "-")
        c, d = self.counts, self.decisions
        ap = "" if self.champion_ap is None else f" (AP {self.champion_ap:.2f})"
        hits = sum(a and f for a, f in self.outcomes)
        alerted, frauds = sum(a for a, _ in self.outcomes), sum(f for _, f in self.outcomes)
        quality = (f" | last {len(self.outcomes)} labels: precision {hits / alerted if alerted else 0:.2f} "
                   f"recall {hits / frauds if frauds else 0:.2f}") if self.outcomes else ""
        status = (f"[{elapsed_s:4.0f}s] sent {sent} tx, {labels} labels, {bad} bad | valid {c[TRANSACTIONS_VALID]} "
                  f"scored {c[SCORES]} ({d['decline']} decline, {d['review']} review) alerts {c[ALERTS]} "
                  f"dead {c[DEADLETTER]} | latency p50 {pct(0.5)} ms p99 {pct(0.99)} ms "
                  f"| champion {self.champion}{ap}{quality}")
        shown = []
        if self.alerts_unshown:
            shown.append(f"           … and {self.alerts_unshown} more alerts (`fraudstream tail alerts`)")
        if self.drifts_unshown:
            shown.append(f"           … and {len(self.drifts_unshown)} more drifts: {', '.join(self.drifts_unshown)}")
        self.alerts_shown = self.alerts_unshown = self.drifts_shown = 0
        self.drifts_unshown = []
        dead = self.dead.summary()
        return shown + [status] + ([dead] if dead else [])
