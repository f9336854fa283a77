"""One frozen settings object, read once from the environment (prefix ``FRAUDSTREAM_``).

The same names are used by docker-compose, the Kubernetes manifests and local runs, e.g.
``FRAUDSTREAM_KAFKA_BOOTSTRAP=kafka:9092`` or ``FRAUDSTREAM_REDIS_URL=redis://redis:6379/0``.

>>> Settings(topic_prefix="t1.").topic("scores")
't1.scores'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRETS = ("kafka_sasl_password", "redis_password")
"""Each may instead be read from a file named by ``<NAME>_FILE`` (a mounted Kubernetes or Docker secret)."""


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
    """How long the broker may hold a fetch. Tansu holds every fetch this long (each hop's
    latency), and answers only what it can gather in it: the runner widens it while fetches
    come back empty behind (``shared/stall.py``)."""
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
    """The share of genuine labels the learner learns (every fraud label is learned). Learning
    them all costs ~5× the label CPU and ranked no better on simulated files at the default
    learning rate (``docs/evaluate.md``, "Defaults")."""
    artifact_store: str = "redis"
    """``redis`` or a filesystem path such as ``file:///var/lib/fraudstream/models``."""
    artifacts_kept: int = Field(200, ge=2)
    artifact_grace_s: float = Field(3600.0, ge=0)
    """The artifacts of the latest ``artifacts_kept`` announced versions are kept (to inspect,
    promote or roll back to), and the champion's and the shadowed challenger's; an older one
    goes ``artifact_grace_s`` after it falls out (``services/learner/publishing.py``)."""
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
    ``since`` 4–7 minutes early; measured with SGD at lr 0.01, before 2026-12-04) 400 labels
    promoted 6 challengers in 15, 800 all 15."""
    batch_refit_every_s: float = Field(24 * 3600.0, ge=0)
    """Event seconds (of learned labels' transactions) between fits of the batch challenger
    (HistGradientBoosting) on the labelled window; 0: never. It is judged like a retrain
    (``retrain_holdout_share``, ``retrain_margin``, ``retrain_min_labels``/``_frauds``)."""
    batch_window_s: float = Field(28 * 86400.0, gt=0)
    batch_window_labels: int = Field(200_000, ge=10)
    """The batch challenger is fitted on every label learned over the last ``batch_window_s``
    of event time, at most ``batch_window_labels`` of them (448 bytes each in the learner),
    older than the labels held back to judge it (``services/learner/batch_window.py``)."""
    batch_trees: int = Field(100, ge=1)
    """Boosting iterations of the batch challenger."""
    batch_card_k: int = Field(100, ge=1)
    """k of card precision@k (the cards an analyst team checks a day) the batch challenger must
    not lose on, beside average precision."""

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
    drift_warmup_s: float = Field(0.0, ge=0)
    """Event seconds after the monitor's first transaction before its references start: an
    empty feature store (a fresh stack, the demo) fills its windows meanwhile, which reads as drift."""
    performance_window: int = Field(1000, ge=10)
    performance_evaluate_every: int = Field(100, ge=1)
    performance_min_frauds: int = Field(20, ge=1)
    ap_drop_threshold: float = Field(0.1, gt=0)
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    recent_scores: int = Field(200_000, ge=1)
    retrain_min_features: int = Field(3, ge=1)

    # --- ops
    metrics_port: int = 0
    """Serve /metrics, /healthz and /readyz on this port (0: off)."""
    log_level: str = "INFO"

    # --- security (README: "Secured clusters"): passed to every Kafka and Redis client
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    """CA bundle that signed the brokers' certificates (default: the system's trust store)."""
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    """Client certificate and key, for brokers that authenticate clients by TLS (mTLS)."""
    redis_username: str | None = None
    """A Redis 6+ ACL user; with only a password, Redis's ``default`` user."""
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_ssl_cafile: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None
    """TLS to Redis is on with a ``rediss://`` URL; these name its CA and the client's cert/key."""

    # --- health (shared/health.py)
    liveness_stale_s: float = Field(60.0, gt=0)
    """/healthz fails when the batch loop has not gone round for this long (a stuck loop)."""
    startup_wait_s: float = Field(300.0, ge=0)
    """How long a service waits for Kafka and Redis at start-up before giving up."""
    lag_every_s: float = Field(5.0, ge=0)
    """How often the runner refreshes the fraudstream_consumer_lag gauge."""
    stall_after_s: float = Field(60.0, ge=0)
    """A held partition that brought no record for this long while the broker holds more is
    stalled: logged and counted (``shared/stall.py``; 0: never checked)."""

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        """``FRAUDSTREAM_REDIS_PASSWORD_FILE=/run/secrets/redis`` reads the password from that file."""
        if isinstance(data, dict):
            for name in SECRETS:
                path = data.get(f"{name}_file")
                if path and not data.get(name):
                    data = data | {name: Path(path).read_text().strip()}
        return data

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> Settings:
        files = (self.redis_ssl_cafile, self.redis_ssl_certfile, self.redis_ssl_keyfile)
        if any(files) and not self.redis_url.startswith("rediss://"):
            raise ValueError("redis_ssl_* files are set but redis_url is not rediss:// (TLS would be off)")
        return self

    # --- dashboard
    dashboard_port: int = Field(6066, ge=1, le=65535)
    """The live page: ``http://HOST:PORT/dashboard/``."""
    dashboard_host: str = ""
    """The name other dashboard replicas reach this one by (empty: this machine's hostname)."""
    dashboard_label_wait_s: int = Field(3600, ge=60)
    """How long (wall clock) the dashboard remembers a score for the label join; later labels
    count as unmatched. Memory grows with it: ~200 bytes per score held."""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group(self, service: str) -> str:
        return f"{self.topic_prefix}fraudstream-{service}"

    # --- log output (shared/lifecycle.py)
    log_format: str = Field("text", pattern="^(text|json)$")
    """``json``: one JSON object per log line (time, level, logger, message), for log shippers."""
