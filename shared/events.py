"""Every event that crosses a topic: small, frozen, versioned, named for what happened.

The models are the contract with producers and consumers in any language: their JSON
Schema is exported to ``schemas/`` by ``fraudstream schemas`` and a test fails when the
committed files drift from these classes.

>>> tx = Transaction(tx_id="t1", ts="2026-01-02T03:04:05+01:00", card_id="c1",
...                  merchant_id="m1", amount=12.5, currency="eur", channel="pos",
...                  mcc="5411", country="fr")
>>> tx.ts.isoformat(), tx.currency, tx.country
('2026-01-02T02:04:05+00:00', 'EUR', 'FR')
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from shared.currencies import ISO_4217


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso_8601_only(value: object) -> object:
    """An ISO 8601 string (or a datetime, in code), never a number: pydantic's lax datetime
    would read 1700000000, 1700000000000 and "1700000000" as epoch times, and a producer
    sending seconds where milliseconds were meant (or the reverse) would be silently wrong."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 date-time string, got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {value[:40]!r}") from None


def _unknown_currency(code: str) -> str:
    raise ValueError(f"unknown ISO 4217 currency {code!r}")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, strip_whitespace=True)]
UtcTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only), AfterValidator(_to_utc)]
Currency = Annotated[
    str,
    # No regex pattern: the set lookup below decides, and a pattern cost ~7 µs per event.
    StringConstraints(strict=True, to_upper=True),
    Field(json_schema_extra={"enum": sorted(ISO_4217)}),
    AfterValidator(lambda c: c if c in ISO_4217 else _unknown_currency(c)),
]
Country = Annotated[str, StringConstraints(strict=True, to_upper=True, pattern=r"^[A-Za-z]{2}$")]
Amount = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
"""Zero is real traffic (account verifications, and a favourite of card testers); negative is not."""
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Stamps = dict[Annotated[str, StringConstraints(max_length=32)], float]
"""Stage name → wall-clock epoch seconds when the event left that stage."""


class Event(BaseModel):
    """Base of every event: immutable, versioned, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: int = 1


class Transaction(Event):
    """A card payment as a producer reports it; ``ts`` is event time, normalised to UTC."""

    tx_id: Id
    ts: UtcTime
    card_id: Id
    merchant_id: Id
    amount: Amount
    currency: Currency
    channel: Literal["pos", "ecom", "atm", "moto"]
    mcc: Annotated[str, StringConstraints(strict=True, pattern=r"^\d{4}$")]
    country: Country
    device_id: Id | None = None
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None


class Label(Event):
    """The truth about one transaction, known later (a chargeback, an analyst's verdict)."""

    tx_id: Id
    card_id: Id
    is_fraud: StrictBool
    labelled_at: UtcTime
    source: Literal["chargeback", "analyst", "customer", "maturity", "simulator"] = "chargeback"


class EnrichedTransaction(Event):
    """A transaction with the point-in-time features it was scored with."""

    transaction: Transaction
    features: dict[str, Annotated[float, AfterValidator(_finite)]]
    feature_set_version: str
    freshness_s: dict[str, float] = {}
    """Entity (``card``, ``merchant``) → age in event-time seconds of the newest state used."""
    stages: Stamps = {}


class Reason(BaseModel):
    """One feature's contribution to a score, in words an analyst can read."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    feature: str
    value: float
    contribution: float
    text: str


class Score(Event):
    """The model's verdict on one transaction."""

    tx_id: Id
    card_id: Id
    ts: UtcTime
    score: Probability
    decision: Literal["approve", "review", "decline"]
    model_version: str
    reasons: list[Reason] = []
    stages: Stamps = {}


def alert_id_for(tx_id: str) -> str:
    """An alert's id, derived from its transaction: the alert of a redelivered (or re-scored)
    transaction has the same id, so consumers dedupe it.

    >>> alert_id_for("tx-1") == alert_id_for("tx-1") != alert_id_for("tx-2")
    True
    >>> alert_id_for("tx-1")
    '1d9dc239ffeb52d5a67104c213254921'
    """
    return uuid.uuid5(_ALERTS, tx_id).hex


_ALERTS = uuid.UUID("6b1f0c55-3a4e-4f59-9f55-2b8d8f0f6a11")
"""The namespace of alert ids (fixed forever: changing it changes every alert id)."""


class Alert(Event):
    """A score above the alert threshold: what an ops person needs to act on it."""

    tx_id: Id
    alert_id: str = Field(default_factory=lambda data: alert_id_for(data["tx_id"]))
    """Derived from ``tx_id`` (declared after it, so the factory sees it)."""
    card_id: Id
    merchant_id: Id
    ts: UtcTime
    amount: float
    currency: str
    country: str
    channel: str
    score: Probability
    severity: Literal["low", "medium", "high", "critical"]
    decision: Literal["approve", "review", "decline"]
    model_version: str
    reasons: list[Reason] = []


class DeadLetter(Event):
    """Input a service could not accept: the original bytes, where they came from, and why."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    service: str
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    payload: bytes
    """The original message value, unchanged (base64 in JSON)."""
    error: str
    failed_at: UtcTime = Field(default_factory=utcnow)


class Window(BaseModel):
    """A span of the stream that a statistic was computed over."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start: UtcTime | None = None
    end: UtcTime | None = None
    count: int = 0


class DriftDetected(Event):
    """A monitor found the live stream no longer looks like the reference."""

    event_id: str = Field(default_factory=new_id)
    kind: Literal["feature", "score", "performance"]
    feature: str | None = None
    statistic: str
    value: float
    threshold: float
    reference: Window
    current: Window
    model_version: str | None = None
    severity: Literal["info", "warning", "critical"]
    detected_at: UtcTime = Field(default_factory=utcnow)


class RetrainRequested(Event):
    """Somebody (the monitor or an operator) asks the learner for a challenger."""

    request_id: str = Field(default_factory=new_id)
    reason: str
    drift_event_id: str | None = None
    requested_by: str = "monitor"
    requested_at: UtcTime = Field(default_factory=utcnow)
    since: UtcTime | None = None
    """Event time from which the world changed: a retrain learns only labels of transactions
    from then on (and waits until enough of them are in). None: the whole recent window."""


class TrainingWindow(BaseModel):
    """What a model version has learned from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    labels_seen: int = 0
    frauds_seen: int = 0
    start: UtcTime | None = None
    end: UtcTime | None = None


class ModelVersionPublished(Event):
    """A model version was published, promoted, rejected or rolled back.

    The artifact itself lives in the artifact store; this event carries its reference and
    sha256 so every reader can verify what it loads. Reason ``batch``: the verdict on a
    scheduled batch challenger (status ``champion`` if promoted, ``rejected`` if not).
    """

    version: str
    parent: str | None = None
    reason: Literal["initial", "periodic", "retrain", "promote", "rollback", "rejected", "challenge", "batch"]
    status: Literal["champion", "challenger", "rejected", "retired"]
    training_window: TrainingWindow = TrainingWindow()
    metrics: dict[str, float] = {}
    champion_metrics: dict[str, float] | None = None
    """For a challenger's evaluation: the champion's metrics on the same labels."""
    artifact_ref: str
    artifact_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    drift_event_id: str | None = None
    why: str | None = None
    """A verdict in words: why a retrained or batch challenger was promoted or rejected."""
    published_at: UtcTime = Field(default_factory=utcnow)


# The names DESIGN.md uses for the same events.
DriftEvent = DriftDetected
RetrainRequest = RetrainRequested
ModelVersion = ModelVersionPublished

ALL_EVENTS: tuple[type[Event], ...] = (
    Transaction,
    Label,
    EnrichedTransaction,
    Score,
    Alert,
    DeadLetter,
    DriftDetected,
    RetrainRequested,
    ModelVersionPublished,
)
