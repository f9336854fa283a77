"""A label's tx_id is learned at most once per lineage, even when ``labels`` carries it twice.

Ingest re-publishes a label it claimed but had not committed (it cannot know whether its
first send was acknowledged), so the same label can reach the learner twice. The model is
durable only at snapshots, so "learned" has two halves:

- since the last snapshot: the tx_ids in memory (``_since``); a duplicate within a run, or
  in the range replayed after a restart, is skipped;
- up to a snapshot: a Redis marker per tx_id (``P:{card:C}:learned:T``) whose value names
  the snapshot (version and publication time). Markers are written in one pipeline after
  the snapshot is stored and before its announcement is sent, and a marker is trusted only
  if its snapshot is in the known history: a version that was never announced (a crash
  before the send, whose name a later run reuses) marks nothing.

Markers live ``dedup_ttl_s``: ingest's dedup window, the only span in which it re-publishes.
What remains: a duplicate later than that, or markers lost with a Redis failover, is learned
again; a champion that fails to load at start-up leaves its marked labels unlearned.
"""

from __future__ import annotations

from datetime import datetime

from shared import metrics
from shared.events import Label, ModelVersionPublished
from shared.redis import AsyncRedis
from shared.settings import Settings

SERVICE = "learner"


class LearnedOnce:
    def __init__(self, settings: Settings, redis: AsyncRedis, known: set[tuple[str, datetime]]):
        self.settings, self.redis = settings, redis
        self.known = known
        """The lineage's announcements (version, published_at): the snapshots a marker may name."""
        self._since: dict[str, str] = {}  # tx_id → card_id, learned since the last snapshot
        self._unmarked: list[tuple[str, dict[str, str]]] = []  # (stamp, tx_id → card_id) to write

    def _key(self, card_id: str, tx_id: str) -> str:
        return f"{self.settings.redis_prefix}:{{card:{card_id}}}:learned:{tx_id}"

    async def fresh(self, labels: list[Label]) -> list[bool]:
        """For each label, whether it may be learned: not learned since the snapshot, not
        marked by a known snapshot, and not an earlier label of the same list."""
        if not labels:
            return []
        pending = {tx for _, marks in self._unmarked for tx in marks}
        pipe = self.redis.pipeline(transaction=False)
        for label in labels:
            pipe.get(self._key(label.card_id, label.tx_id))
        answers, taken = [], set()
        for label, stamp in zip(labels, await pipe.execute()):
            tx = label.tx_id
            ok = tx not in self._since and tx not in pending and tx not in taken and not self._trusted(stamp)
            taken.add(tx)
            answers.append(ok)
        skipped = answers.count(False)
        if skipped:
            metrics.LABELS_DUPLICATE.labels(SERVICE).inc(skipped)
        return answers

    def _trusted(self, stamp: bytes | None) -> bool:
        if stamp is None:
            return False
        version, _, published_at = stamp.decode().partition("|")
        try:
            return (version, datetime.fromisoformat(published_at)) in self.known
        except ValueError:  # not a stamp we wrote: trust nothing
            return False

    def learned(self, label: Label) -> None:
        self._since[label.tx_id] = label.card_id

    def sealed(self, snapshot: ModelVersionPublished) -> None:
        """A snapshot holds everything learned so far: its tx_ids are to be marked with it."""
        if self._since:
            self._unmarked.append((f"{snapshot.version}|{snapshot.published_at.isoformat()}", self._since))
        self._since = {}

    async def mark(self) -> None:
        """Write the markers of sealed snapshots (one pipeline); kept for the retry on failure."""
        if not self._unmarked:
            return
        pipe = self.redis.pipeline(transaction=False)
        for stamp, marks in self._unmarked:
            for tx_id, card_id in marks.items():
                pipe.set(self._key(card_id, tx_id), stamp, ex=self.settings.dedup_ttl_s)
        await pipe.execute()
        self._unmarked = []
