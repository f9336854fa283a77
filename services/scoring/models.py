"""The models a scoring replica holds, kept current from ``model.versions``.

Every replica reads the whole topic (no consumer group), so each one hot-swaps when a
version is announced. An artifact that is missing or fails its sha256 is refused with a
log line and the model in service stays; scoring never waits for a swap. An artifact that
cannot be read because Redis is away is not refused: its announcement is retried, with
backoff, until it loads (the model in service scores meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.model.artifacts import ArtifactStore, load_verified
from services.model.batch import Model
from services.model.fraud_model import FraudModel
from services.model.registry import behind, reading
from shared import metrics
from shared.codec import DecodeError, decode
from shared.errors import ArtifactError
from shared.events import ModelVersionPublished, utcnow
from shared.lifecycle import wait_set
from shared.runner import TRANSIENT
from shared.settings import Settings

log = logging.getLogger(__name__)
UNTRAINED = "untrained"


@dataclass
class Slot:
    version: str
    model: Model


class ModelSlots:
    """The champion (always) and the challenger (when one is being evaluated)."""

    def __init__(self, settings: Settings, store: ArtifactStore):
        self.settings = settings
        self.store = store
        self.champion = Slot(UNTRAINED, FraudModel(genuine_rate=settings.genuine_sample_rate))
        self.challenger: Slot | None = None
        self.refused: list[str] = []
        self.swap_delay_s: float | None = None
        """Announcement → serving, for the latest swap (a replica catching up reads old ones)."""
        self.waiting: str | None = None
        """The version whose artifact load is being retried after a transient error."""

    async def apply_until_loaded(self, event: ModelVersionPublished, stop: asyncio.Event) -> None:
        """``apply``, retried with backoff while Redis (or the broker) is away, until ``stop``."""
        delay = 0.1
        while True:
            try:
                await self.apply(event)
                self.waiting = None
                return
            except TRANSIENT as exc:
                self.waiting = event.version
                log.warning("model %s: artifact not readable yet (%r); retrying in %.1f s", event.version, exc, delay)
            if await wait_set(stop, delay):
                return
            delay = min(2 * delay, 10.0)

    async def apply(self, event: ModelVersionPublished) -> None:
        """Serve the announced version; a bad artifact is refused, a transient error raised."""
        if event.status in ("rejected", "retired"):
            if self.challenger is not None and self.challenger.version == event.version:
                self.challenger = None
            return
        current = self.champion if event.status == "champion" else self.challenger
        if current is not None and current.version == event.version:
            return
        try:
            model = await load_verified(self.store, event.artifact_ref, event.artifact_sha256)
        except ArtifactError as exc:
            self.refused.append(event.version)
            log.error("refused model %s (%s): %s; keeping %s", event.version, event.status, exc,
                      self.champion.version)
            return
        slot = Slot(event.version, model)
        self.swap_delay_s = (utcnow() - event.published_at).total_seconds()
        metrics.MODEL_SWAP_SECONDS.observe(self.swap_delay_s)
        if event.status == "champion":
            metrics.MODEL_VERSION.labels(self.champion.version).set(0)
            self.champion = slot
            metrics.MODEL_VERSION.labels(slot.version).set(1)
            if self.challenger is not None and self.challenger.version == event.version:
                self.challenger = None  # promoted
        else:
            self.challenger = slot
        log.info("now serving %s %s, %.0f ms after its announcement", event.status, event.version,
                 1000 * self.swap_delay_s)

    async def follow(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Apply every announced version; ``ready`` is set once the history is read."""
        async with reading(self.settings) as (consumer, end):
            while not stop.is_set():
                for batch in (await consumer.getmany(timeout_ms=100)).values():
                    for record in batch:
                        try:
                            event = decode(record.value, ModelVersionPublished)
                        except DecodeError as exc:
                            # every replica reads the whole topic: logged here, dead-lettered by the learner
                            log.error("unreadable model.versions record at offset %d: %s", record.offset, exc)
                            continue
                        await self.apply_until_loaded(event, stop)
                if not ready.is_set() and not await behind(consumer, end):
                    ready.set()
