"""Every topic, spelled once: what flows through the system, read at a glance.

Services import these constants and never write a topic name themselves. Everything
derived from a transaction is keyed by ``card_id``, so one card's events stay in order on
one partition and one worker owns that card's state at a time.

``consumers`` is the truth about who reads what: each service declares its inputs once
(``SPEC`` in its service module) and a test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import events as ev


@dataclass(frozen=True)
class Topic:
    name: str
    event: type[ev.Event]
    key: str
    producer: str
    consumers: tuple[str, ...]
    partitions: int | None = None
    """None: the deployment's default (``FRAUDSTREAM_PARTITIONS``)."""
    retention_ms: int = 7 * 24 * 3600 * 1000
    compact: bool = False


TRANSACTIONS_RAW = "transactions.raw"
LABELS_RAW = "labels.raw"
TRANSACTIONS_VALID = "transactions.valid"
LABELS = "labels"
TRANSACTIONS_ENRICHED = "transactions.enriched"
SCORES = "scores"
SCORES_SHADOW = "scores.shadow"
ALERTS = "alerts"
MODEL_VERSIONS = "model.versions"
MODEL_RETRAIN = "model.retrain"
DRIFT_EVENTS = "drift.events"
DEADLETTER = "deadletter"

_FOREVER = -1

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(TRANSACTIONS_RAW, ev.Transaction, "card_id", "producers", ("ingest",)),
        Topic(LABELS_RAW, ev.Label, "card_id", "producers", ("ingest",)),
        Topic(TRANSACTIONS_VALID, ev.Transaction, "card_id", "ingest", ("features",)),
        Topic(LABELS, ev.Label, "card_id", "ingest", ("features", "learner", "monitor", "dashboard")),
        Topic(TRANSACTIONS_ENRICHED, ev.EnrichedTransaction, "card_id", "features",
              ("scoring", "learner", "monitor")),
        Topic(SCORES, ev.Score, "card_id", "scoring", ("monitor", "downstream", "dashboard")),
        Topic(SCORES_SHADOW, ev.Score, "card_id", "scoring", ("analysts",)),
        Topic(ALERTS, ev.Alert, "card_id", "scoring", ("ops", "dashboard")),
        Topic(MODEL_VERSIONS, ev.ModelVersionPublished, "version", "learner",
              ("scoring", "learner", "monitor", "dashboard"),
              partitions=1, retention_ms=_FOREVER),
        Topic(MODEL_RETRAIN, ev.RetrainRequested, "request_id", "monitor, ops", ("learner",), partitions=1),
        Topic(DRIFT_EVENTS, ev.DriftDetected, "kind", "monitor", ("ops", "dashboard"), partitions=1),
        Topic(DEADLETTER, ev.DeadLetter, "source key", "every service", ("ops", "dashboard"),
              retention_ms=30 * 24 * 3600 * 1000),
    )
}
