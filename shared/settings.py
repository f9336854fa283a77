"""One frozen settings object, read once from the environment (prefix ``FRAUDSTREAM_``).

The same names are used by docker-compose, the Kubernetes manifests and local runs, e.g.
``FRAUDSTREAM_KAFKA_BOOTSTRAP=kafka:9092`` or ``FRAUDSTREAM_REDIS_URL=redis://redis:6379/0``.

>>> Settings(topic_prefix="t1.").topic("scores")
't1.scores'
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", frozen=True, extra="ignore")

    # --- where things are
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    topic_prefix: str = ""
    redis_cluster: bool = False
    """Talk to a Redis Cluster: scripts are then called once per hash slot of a batch."""
    redis_prefix: str = "fs"
    """Every Redis key starts with this, so several deployments can share one Redis."""
    create_topics: bool = True
    """Create missing topics at start-up; set false where topics are managed elsewhere."""
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)

    # --- Kafka client tuning
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    fetch_max_wait_ms: int = 10
    batch_max: int = Field(500, ge=1)
    linger_ms: int = 5
    max_message_bytes: int = Field(64 * 1024, ge=256)
    """Larger inputs are dead-lettered as oversized."""

    # --- ingest policy
    max_amount: float = 1_000_000.0
    max_future_skew_s: float = 300.0
    """A transaction stamped further in the future than this is refused."""
    max_age_days: float = 400.0
    """A transaction older than this is refused."""
    dedup_ttl_s: int = 7 * 24 * 3600

    # --- features
    feature_ttl_s: int = 120 * 24 * 3600
    """How long a transaction's feature vector is kept for the label join (> max label delay)."""
    max_lateness_s: float = 3600.0
    """Transactions older than the card's newest by more than this are dead-lettered."""

    # --- scoring
    review_threshold: float = Field(0.5, ge=0, le=1)
    decline_threshold: float = Field(0.9, ge=0, le=1)
    alert_threshold: float = Field(0.8, ge=0, le=1)
    reasons_top_k: int = 3
    shadow_scoring: bool = True

    # --- learner
    publish_every_labels: int = 1000
    publish_every_s: float = 60.0
    label_maturity_s: float = 30 * 24 * 3600.0
    """A transaction without a fraud label this long after it happened is taken as genuine."""
    label_wait_s: float = 3 * 24 * 3600.0
    """How long a label waits for its transaction's feature vector (features lagging behind,
    restarting) before it is dead-lettered; never longer than ``feature_ttl_s``."""
    genuine_sample_rate: float = Field(0.2, gt=0, le=1)
    artifact_store: str = "redis"
    """``redis`` or a filesystem path such as ``file:///var/lib/fraudstream/models``."""
    retrain_window_labels: int = Field(5000, ge=10)
    """The latest learned labels a retrain draws its challenger's training and evaluation from."""
    retrain_holdout_share: float = Field(0.3, gt=0, lt=1)
    """The most recent share of that window held back to compare challenger and champion."""
    retrain_margin: float = Field(0.02, ge=0)
    """A challenger is promoted only if its held-back average precision beats the champion's by this."""
    retrain_min_labels: int = Field(200, ge=2)
    retrain_min_frauds: int = Field(10, ge=2)
    """A retrain with fewer labels or frauds in its window is refused."""
    retrain_epochs_since_drift: int = Field(5, ge=1)
    """Passes over the training part when a request names the drift's start (``since``)."""
    retrain_min_labels_since_drift: int = Field(800, ge=2)
    retrain_min_frauds_since_drift: int = Field(80, ge=2)
    """A request with ``since`` waits until the window holds this many labels and frauds of
    transactions from then on (refused if they are not in after twice ``label_maturity_s``).
    ``since`` is a window start, minutes before the change: in the drift test's world (5 seeds,
    ``since`` 4–7 minutes early) 400 labels promoted 6 challengers in 15, 800 all 15."""

    # --- monitor
    psi_threshold: float = 0.2
    ks_alpha: float = 0.001
    retrain_cooldown_s: float = 600.0
    """At most one retrain request per this many seconds of event time."""
    drift_window: int = Field(2000, ge=100)
    """Rows in the reference window (the first after a new champion) and in the sliding current one."""
    drift_evaluate_every: int = Field(250, ge=1)
    drift_bins: int = Field(10, ge=2)
    drift_sample_every: int = Field(1, ge=1)
    """Keep 1 in N transactions (by tx_id hash) in the drift windows, so they span more time at high rates."""
    drift_rearm_fraction: float = Field(0.5, gt=0, le=1)
    performance_window: int = Field(1000, ge=10)
    performance_evaluate_every: int = Field(100, ge=1)
    performance_min_frauds: int = Field(20, ge=1)
    ap_drop_threshold: float = Field(0.1, gt=0)
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    recent_scores: int = Field(200_000, ge=1)
    retrain_min_features: int = Field(3, ge=1)

    # --- ops
    metrics_port: int = 0
    """Serve Prometheus metrics on this port (0: off)."""
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group(self, service: str) -> str:
        return f"{self.topic_prefix}fraudstream-{service}"

    # --- log output (shared/lifecycle.py)
    log_format: str = Field("text", pattern="^(text|json)$")
    """``json``: one JSON object per log line (time, level, logger, message), for log shippers."""
