"""``fraudstream retrain --wait``: ask for a retrain and read its verdict off ``model.versions``.

The learner announces a verdict as a version with reason ``retrain`` (promoted) or
``rejected``; a request it refuses (too few labels or frauds in its window) or keeps queued
(``--since``: until enough labels of the new world are in) announces nothing, so silence
until the timeout is the refusal, and is said as such.
"""

from __future__ import annotations

import time
from datetime import datetime

from services.learner.service import request_retrain
from shared.codec import DecodeError, decode
from shared.events import ModelVersionPublished, RetrainRequested
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.topics import MODEL_VERSIONS

VERDICTS = ("retrain", "rejected")


class NoVerdict(TimeoutError):
    """No verdict was announced in time: refused, queued, or no learner running."""


def is_verdict(event: ModelVersionPublished, drift_event_id: str | None) -> bool:
    """A retrain's verdict; for a request answering a drift event, the verdict on that one."""
    return event.reason in VERDICTS and (drift_event_id is None or event.drift_event_id == drift_event_id)


async def request_and_wait(settings: Settings, reason: str, drift_event_id: str | None, since: datetime | None,
                           timeout_s: float) -> tuple[RetrainRequested, ModelVersionPublished]:
    # Positioned at the end before the request goes out: the verdict cannot slip past.
    consumer = make_consumer(settings, MODEL_VERSIONS, group=None, auto_offset_reset="latest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=100)  # takes the end positions now
        request = await request_retrain(settings, reason, "ops", drift_event_id, since)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in (r for batch in (await consumer.getmany(timeout_ms=500)).values() for r in batch):
                try:
                    event = decode(record.value, ModelVersionPublished)
                except DecodeError:
                    continue
                if is_verdict(event, drift_event_id):
                    return request, event
        waiting = "queued until enough labels since --since are in, or " if since is not None else ""
        raise NoVerdict(f"retrain {request.request_id}: no verdict on model.versions within {timeout_s:.0f}s: "
                        f"{waiting}refused by the learner (too few labels or frauds in its window: its log says "
                        f"'retrain {request.request_id} ... refused: why'), or no learner is running")
    finally:
        await consumer.stop()
