"""One consumed record → one observation: the few fields the page needs, as a JSON dict.

Events are decoded with the project's codec; what cannot be decoded raises
:class:`~shared.codec.DecodeError` and the agent dead-letters it. A label's observation
leaves its score empty (``s``: None): the agent fills it from the join table.

>>> raw = b'{"tx_id":"t1","card_id":"c1","ts":"2026-01-01T00:00:00Z","score":0.93,' \\
...       b'"decision":"decline","model_version":"v1"}'
>>> observe("scores", 1, 41, 61_500, raw)
({'k': 'score', 'src': 'scores:1', 'o': 41, 'm': 60, 's': 0.93}, 't1')
"""

from __future__ import annotations

from typing import Any, Callable

from shared import events as ev
from shared.codec import decode
from shared.topics import ALERTS, DEADLETTER, DRIFT_EVENTS, LABELS, MODEL_VERSIONS, SCORES

Details = Callable[[Any], dict[str, Any]]


def _alert(a: ev.Alert) -> dict[str, Any]:
    shown = a.model_dump(mode="json", include={"tx_id", "card_id", "merchant_id", "ts", "amount", "currency",
                                                "country", "channel", "score", "severity", "decision",
                                                "model_version"})
    return {"event": shown | {"reasons": [r.text for r in a.reasons]}}


def _drift(d: ev.DriftDetected) -> dict[str, Any]:
    return {"event": d.model_dump(mode="json", include={"kind", "feature", "statistic", "value", "threshold",
                                                         "severity", "model_version", "detected_at"})}


def _model(m: ev.ModelVersionPublished) -> dict[str, Any]:
    shown = m.model_dump(mode="json", include={"version", "parent", "reason", "status", "metrics", "published_at"})
    return {"event": shown | {"labels_seen": m.training_window.labels_seen}}


def reason_of(letter: ev.DeadLetter) -> str:
    """Group dead letters by service and the kind of error, not by every value in it.

    >>> reason_of(ev.DeadLetter(service="ingest", topic="x", partition=0, offset=0, payload=b"",
    ...                         error="not a valid Transaction: amount: Input should be greater than 0"))
    'ingest: not a valid Transaction'
    """
    return f"{letter.service}: {letter.error.split(':', 1)[0]}"


KINDS: dict[str, tuple[str, type[ev.Event], Details]] = {
    SCORES: ("score", ev.Score, lambda s: {"s": s.score}),
    LABELS: ("label", ev.Label, lambda label: {"fraud": label.is_fraud, "s": None}),
    ALERTS: ("alert", ev.Alert, _alert),
    DEADLETTER: ("deadletter", ev.DeadLetter, lambda d: {"reason": reason_of(d)}),
    DRIFT_EVENTS: ("drift", ev.DriftDetected, _drift),
    MODEL_VERSIONS: ("model", ev.ModelVersionPublished, _model),
}
"""Logical topic → (observation kind, event type, the fields the page shows)."""


def minute_of(timestamp_ms: int) -> int:
    return timestamp_ms // 60_000 * 60


def observe(topic: str, partition: int, offset: int, timestamp_ms: int, raw: bytes | None) -> tuple[dict, str | None]:
    """The observation of one record of a logical ``topic``, and its tx_id (None if it has none)."""
    kind, event_type, details = KINDS[topic]
    event = decode(raw if raw is not None else b"", event_type)
    row = {"k": kind, "src": f"{topic}:{partition}", "o": offset, "m": minute_of(timestamp_ms)}
    return row | details(event), getattr(event, "tx_id", None)
