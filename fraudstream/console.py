"""What ops read: one line per event, and ``tail`` that follows a topic.

>>> from shared.events import Score
>>> line(Score(tx_id="t1", card_id="c9", ts="2026-01-01T10:00:00Z", score=0.93,
...            decision="decline", model_version="v3"))
'10:00:00  score  0.930 decline  tx=t1 card=c9 model=v3'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared import events as ev
from shared.codec import DecodeError, decode
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import TOPICS


def _reasons(reasons: list[ev.Reason]) -> str:
    return "; ".join(r.text for r in reasons)


def _time(t) -> str:
    return t.strftime("%H:%M:%S") if t is not None else "--:--:--"


RENDER: dict[type, Callable] = {
    ev.Transaction: lambda e: f"{_time(e.ts)}  tx     {e.amount:>9.2f} {e.currency} {e.channel:<4} "
    f"card={e.card_id} merchant={e.merchant_id} {e.country} tx={e.tx_id}",
    ev.Label: lambda e: f"{_time(e.labelled_at)}  label  {'FRAUD' if e.is_fraud else 'genuine'} "
    f"tx={e.tx_id} card={e.card_id} ({e.source})",
    ev.EnrichedTransaction: lambda e: f"{_time(e.transaction.ts)}  enriched tx={e.transaction.tx_id} "
    f"card={e.transaction.card_id} {len(e.features)} features ({e.feature_set_version})",
    ev.Score: lambda e: f"{_time(e.ts)}  score  {e.score:.3f} {e.decision:<7}  tx={e.tx_id} card={e.card_id} "
    f"model={e.model_version}" + (f"  [{_reasons(e.reasons)}]" if e.reasons else ""),
    ev.Alert: lambda e: f"{_time(e.ts)}  ALERT  {e.severity.upper():<8} score={e.score:.3f} "
    f"{e.amount:.2f} {e.currency} card={e.card_id} merchant={e.merchant_id} {e.country}/{e.channel} "
    f"tx={e.tx_id} model={e.model_version}" + (f"\n           why: {_reasons(e.reasons)}" if e.reasons else ""),
    ev.DeadLetter: lambda e: f"{_time(e.failed_at)}  DEAD   {e.service} {e.topic}[{e.partition}]@{e.offset}: "
    f"{e.error}  payload={e.payload[:60]!r}",
    ev.DriftDetected: lambda e: f"{_time(e.detected_at)}  DRIFT  {e.severity.upper():<8} {e.kind}"
    f"{'/' + e.feature if e.feature else ''} {e.statistic}={e.value:.4g} (threshold {e.threshold:.4g}) "
    f"model={e.model_version} id={e.event_id[:8]}",
    ev.RetrainRequested: lambda e: f"{_time(e.requested_at)}  RETRAIN by {e.requested_by}: {e.reason}"
    f"{' drift=' + e.drift_event_id[:8] if e.drift_event_id else ''} id={e.request_id[:8]}",
    ev.ModelVersionPublished: lambda e: f"{_time(e.published_at)}  MODEL  {e.version} {e.status.upper()} "
    f"({e.reason}, parent {e.parent}) labels={e.training_window.labels_seen} "
    + " ".join(f"{k}={v:.3f}" for k, v in sorted(e.metrics.items())),
}


def line(event: ev.Event) -> str:
    return RENDER[type(event)](event)


async def tail(settings: Settings, topic: str, from_beginning: bool, limit: int | None, emit=print,
               stop: asyncio.Event | None = None) -> int:
    """Follow a topic and print each event as one line (undecodable records say so), until
    ``stop`` is set or ``limit`` records are printed: exactly ``limit``, however many a poll
    brings. Returns how many were printed."""
    event_type = TOPICS[topic].event
    consumer = make_consumer(settings, topic, group=None,
                             auto_offset_reset="earliest" if from_beginning else "latest")
    wait = FetchWait("console", consumer, settings.fetch_max_wait_ms)
    seen = 0
    try:
        await consumer.start()  # inside the try: a failed start still closes the client
        while (limit is None or seen < limit) and not (stop is not None and stop.is_set()):
            polled = await wait.poll(timeout_ms=500, max_records=None if limit is None else limit - seen)
            for record in (r for batch in polled.values() for r in batch):
                if limit is not None and seen >= limit:
                    break
                try:
                    emit(line(decode(record.value, event_type)))
                except DecodeError as exc:
                    emit(f"?? offset {record.offset}: {exc}")
                seen += 1
    finally:
        await consumer.stop()
    return seen
