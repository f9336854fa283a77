"""What the bench reads back: output counts, arrival times and latencies of a topic."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import orjson

from shared.kafka import make_consumer, skip_to_end
from shared.settings import Settings
from shared.stall import FetchWait


class OutputCounter:
    """Counts a topic's records from its beginning, or from its end when the counter starts.

    First and last output are arrival times, or with ``record_clock`` the records' own
    timestamps (when their producer made them), for a topic read after the fact: Tansu's
    fetch costs CPU in proportion to the batches a partition holds, so a live counter
    behind a topic written one record per batch slows the broker down (the naive loop
    measured 350/s with one, 520/s without).
    """

    def __init__(self, settings: Settings, topic: str, from_end: bool, hops: bool = False,
                 record_clock: bool = False):
        self.consumer = make_consumer(settings, topic, group=None,
                                      auto_offset_reset="latest" if from_end else "earliest")
        self.wait = FetchWait("bench", self.consumer, settings.fetch_max_wait_ms)
        self.from_end, self.record_clock = from_end, record_clock
        self.first = self.last = 0.0
        self.seen = 0
        self.stale = 0
        """Records stamped before ``since``: already on the topic, not part of this load."""
        self.since = 0.0
        self.latencies: list[float] = []
        self.hops: dict[str, list[float]] | None = defaultdict(list) if hops else None
        """With ``hops``, each score's time per hop, from the stamps the services put in it."""

    async def start(self) -> OutputCounter:
        await self.consumer.start()
        if self.from_end:
            # old outputs re-read from a wrong "latest" were the 3-13 s "stall" of earlier runs
            await skip_to_end(self.consumer)
            self.since = time.time() - 0.001  # record timestamps are whole milliseconds
        return self

    def _take(self, polled) -> None:
        now = time.time()
        for batch in polled.values():
            fresh = [now - r.timestamp / 1000 for r in batch if r.timestamp / 1000 >= self.since]
            self.stale += len(batch) - len(fresh)
            if fresh and self.record_clock:
                stamps = [r.timestamp / 1000 for r in batch]
                self.first = min(self.first or math.inf, *stamps)
                self.last = max(self.last, *stamps)
            elif fresh:
                self.first = self.first or now
                self.last = now
            if fresh:
                self.seen += len(fresh)
                self.latencies.extend(fresh)
                if self.hops is not None:
                    self._hops(batch, now)

    def _hops(self, batch, now: float) -> None:
        if self.hops is None:
            return
        for r in batch:
            t = orjson.loads(r.value).get("stages", {})
            if r.timestamp / 1000 >= self.since and {"received", "enriched", "scored"} <= t.keys():
                self.hops["raw_to_enriched"].append(t["enriched"] - t["received"])
                self.hops["enriched_to_scored"].append(t["scored"] - t["enriched"])
                self.hops["scored_to_consumer"].append(now - t["scored"])

    async def until(self, expected: int, timeout_s: float) -> OutputCounter:
        deadline = time.monotonic() + timeout_s
        try:
            while self.seen < expected and time.monotonic() < deadline:
                self._take(await self.wait.poll(timeout_ms=100, max_records=10_000))
        finally:
            await self.consumer.stop()
        return self

    def rate(self) -> float:
        span = self.last - self.first
        return (self.seen - 1) / span if span > 0 else 0.0


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}": 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 95, 99)}
