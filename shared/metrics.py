"""Prometheus metrics every service exports (``FRAUDSTREAM_METRICS_PORT`` turns the endpoint on,
served with /healthz and /readyz by :mod:`shared.health`)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from shared.events import DriftDetected

EVENTS_IN = Counter("fraudstream_events_in", "Records consumed", ["service", "topic"])
EVENTS_OUT = Counter("fraudstream_events_out", "Records produced", ["service", "topic"])
DEADLETTERS = Counter("fraudstream_deadletter", "Records dead-lettered", ["service", "reason"])
BATCH_SECONDS = Histogram(
    "fraudstream_batch_seconds",
    "Time to process one consumed batch, outputs acknowledged",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
END_TO_END_SECONDS = Histogram(
    "fraudstream_end_to_end_seconds",
    "Wall time from ingest to score",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PARTITION_STALLS = Counter(
    "fraudstream_partition_stalls",
    "Held partitions that brought no record for stall_after_s while the broker held more",
    ["service", "topic", "partition"],
)
FETCH_WAIT_MS = Gauge(
    "fraudstream_fetch_wait_ms",
    "The fetch wait the consumer asks of the broker: the setting, widened while fetches come back empty behind",
    ["service"],
)
MODEL_VERSION = Gauge("fraudstream_model_version_info", "Model version in service (1 = current)", ["version"])
MODEL_SWAP_SECONDS = Histogram(
    "fraudstream_model_swap_seconds",
    "Wall time from a model version's announcement to this replica serving it",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LABEL_DELAY_SECONDS = Histogram(
    "fraudstream_label_delay_seconds",
    "Event time from a transaction to its label",
    buckets=(60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400, 90 * 86400),
)
LABELS_UNMATCHED = Counter(
    "fraudstream_labels_unmatched", "Labels whose transaction is unknown or expired", ["service"]
)
LABELS_DUPLICATE = Counter(
    "fraudstream_labels_duplicate", "Labels skipped: their tx_id was learned already (a re-published label)",
    ["service"],
)
DRIFT_EVENTS = Counter("fraudstream_drift_events", "Drift detections", ["kind"])
for _kind in get_args(DriftDetected.model_fields["kind"].annotation):
    DRIFT_EVENTS.labels(_kind)  # exported as 0 from the start: a dashboard shows "no drift", not "no data"
CONSUMER_LAG = Gauge(
    "fraudstream_consumer_lag",
    "Records on the broker not yet consumed, per consumer group and partition (highwater - position)",
    ["group", "topic", "partition"],
)
HEALTHY = Gauge("fraudstream_healthy", "1 while /healthz would answer 200 (batch loop turning), at scrape time")
READY = Gauge("fraudstream_ready", "1 while /readyz would answer 200, at scrape time")

