"""Seeded card traffic in event time: transactions and their delayed labels, in emission order.

Everything is deterministic for a given :class:`SimulatorConfig`: one ``random.Random``
drives the population, the arrivals and the fraud episodes, a second one the labels, so
changing the label settings leaves the transactions as they were.

>>> from itertools import islice
>>> config = SimulatorConfig(seed=3, n_cards=200, n_merchants=50)
>>> first = next(simulate(config))
>>> first.topic, first.event.tx_id, first.at == first.event.ts
('transactions.raw', 'tx-3-0', True)
>>> sum(1 for e in simulate(config, n_transactions=1000) if e.topic == "transactions.raw")
1000
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from heapq import heappop, heappush
from itertools import count
from pathlib import Path
from random import Random
from typing import Literal, NamedTuple, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from fraudstream.simulator.patterns import (
    LONG_FRAUDS_MIN_DAYS,
    PATTERNS,
    Draft,
    FraudMix,
    with_drift_pattern,
    with_long_patterns,
)
from fraudstream.simulator.population import EUR_TO, build_world, genuine_payment
from shared.codec import explain
from shared.events import Label, Transaction
from shared.topics import LABELS_RAW, TRANSACTIONS_RAW

RHYTHM = (0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 0.90, 0.95, 1.00,
          1.15, 1.05, 0.95, 0.95, 1.00, 1.15, 1.35, 1.40, 1.25, 1.00, 0.70, 0.45)
"""Relative traffic per UTC hour: quiet nights, a lunch bump, busy evenings. The population
lives mostly in Europe, so UTC hours are close enough to its local hours."""


class SimulatorConfig(BaseModel):
    """Everything that shapes the stream; the same config gives the same stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    n_cards: int = Field(10_000, ge=1)
    n_merchants: int = Field(1_000, ge=3)
    start: AwareDatetime = datetime(2026, 1, 1, tzinfo=UTC)
    """Event time of the first moment of traffic."""
    tx_per_card_per_day: float = Field(2.5, gt=0)
    fraud_rate: float = Field(0.007, ge=0, lt=0.5)
    """Share of all transactions that are fraud (patterns in ``patterns.py``)."""
    label_delay_mean: timedelta = Field(timedelta(days=2), gt=timedelta(0))
    """Mean event-time delay from a transaction to its label; the demo uses minutes."""
    label_delay_sigma: float = Field(1.0, ge=0)
    """Log-normal shape of that delay: chargebacks have a long tail; 0 gives a fixed delay."""
    label_genuine: bool = True
    """Also label a share of genuine transactions ``is_fraud=False`` (source ``analyst``).

    Chargebacks only ever say "fraud"; without explicit negatives a learner sees one class.
    Negatives use the same delay distribution as chargebacks, so a window of labels holds
    frauds and negatives in proportion and label timing says nothing about the class.
    Sampling inflates the apparent fraud rate by 1 / ``genuine_label_share``: a learner
    that needs calibrated probabilities weights each negative by that factor."""
    genuine_label_share: float = Field(0.1, ge=0, le=1)
    long_frauds: bool | None = None
    """Add the frauds that go on for weeks (compromised terminals and cards, ``patterns.py``);
    None: add them to a bounded stream of at least ``LONG_FRAUDS_MIN_DAYS`` (28) days
    (:func:`has_long_frauds`), leave them out of shorter and endless ones."""
    drift_at: int | AwareDatetime | None = None
    """After this event time, or this many transactions, the world changes."""
    drift_amount_factor: float = Field(1.5, gt=0)
    """Genuine amounts are multiplied by this after drift."""
    drift_new_pattern: bool = True
    """After drift, a new fraud pattern appears (``drift_pattern``)."""
    drift_pattern: Literal["quasi_cash", "low_value"] = "quasi_cash"
    """Which: quasi-cash in a new category and country, or low-value card-not-present fraud
    that keeps under the exemption and velocity limits (table in ``patterns.py``). With
    ``drift_amount_factor`` 2 (a festive season: genuine baskets double) ``low_value``
    reverses what a large amount meant: a model that learned it must unlearn it."""
    drift_pattern_share: float = Field(0.4, ge=0, lt=1)
    drift_fraud_rate: float | None = Field(None, ge=0, lt=0.5)
    """The fraud rate after drift (None: unchanged)."""

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Emission(NamedTuple):
    """One event to publish at ``at`` (event time) on ``topic``."""

    at: datetime
    topic: str
    event: Transaction | Label
    fraud_pattern: str | None = None
    """Ground truth for the CSV, tests and evaluation: never published."""


def mean_tx_per_s(config: SimulatorConfig) -> float:
    """The population's average rate in event time.

    >>> mean_tx_per_s(SimulatorConfig(n_cards=8640, tx_per_card_per_day=1.0))
    0.1
    """
    return config.n_cards * config.tx_per_card_per_day / 86_400


def time_scale(config: SimulatorConfig, tx_per_s: float) -> float:
    """Event-time seconds that pass per wall-clock second when publishing ``tx_per_s``.

    The simulator leaves pacing to the caller: publish the n-th transaction at n / rate
    and each label when the stream reaches it. Event time then runs this many times faster
    than the wall clock, so a label delay of D event seconds arrives D / scale wall seconds
    later, and a run of W wall seconds covers W * scale event seconds (keep ``start`` that
    far in the past if ingest refuses transactions from the future).

    >>> time_scale(SimulatorConfig(n_cards=8640, tx_per_card_per_day=1.0), tx_per_s=100)
    1000.0
    """
    return tx_per_s / mean_tx_per_s(config)


def has_long_frauds(config: SimulatorConfig, n_transactions: int | None) -> bool:
    """Whether a stream of ``n_transactions`` (None: endless) has the frauds that go on for
    weeks: as configured, or by default when it spans at least ``LONG_FRAUDS_MIN_DAYS``.

    >>> config = SimulatorConfig(n_cards=1000, tx_per_card_per_day=2.5)   # 2,500 a day
    >>> has_long_frauds(config, 69_999), has_long_frauds(config, 70_000), has_long_frauds(config, None)
    (False, True, False)
    >>> has_long_frauds(config.model_copy(update={"long_frauds": True}), 1000)
    True
    """
    if config.long_frauds is not None:
        return config.long_frauds
    return n_transactions is not None and n_transactions >= LONG_FRAUDS_MIN_DAYS * 86_400 * mean_tx_per_s(config)


def simulate(config: SimulatorConfig, n_transactions: int | None = None) -> Iterator[Emission]:
    """Transactions and labels merged in time order; endless unless ``n_transactions`` is
    given, in which case the labels of those transactions follow the last one."""
    rng = Random(config.seed)
    world = build_world(rng, config.seed, config.n_cards, config.n_merchants)
    base = with_long_patterns(PATTERNS) if has_long_frauds(config, n_transactions) else PATTERNS
    before = FraudMix(config.fraud_rate, base)
    drifted_patterns = with_drift_pattern(config.drift_pattern_share, config.drift_pattern, base)
    after = FraudMix(config.fraud_rate if config.drift_fraud_rate is None else config.drift_fraud_rate,
                     drifted_patterns if config.drift_new_pattern else base)
    drift_ms, drift_tx = _drift_point(config)
    arrivals = _Arrivals(config, rng)
    labels_rng = Random(f"labels-{config.seed}")  # label settings never change the transactions
    label_delay = _LabelDelay(config, labels_rng)
    start, seed, limit = config.start, config.seed, math.inf if n_transactions is None else n_transactions
    genuine_share = config.genuine_label_share if config.label_genuine else 0.0
    seq = count()
    # a pending label carries its Emission, a pending fraud its (draft, pattern name), a moment nothing
    heap: list[tuple[int, int, int, Emission | tuple[Draft, str] | None]] = [
        (arrivals.next_ms(before), next(seq), _MOMENT, None)]
    sent = 0
    while heap:
        at_ms, _, kind, item = heappop(heap)
        if kind == _LABEL:
            yield cast(Emission, item)
            continue
        if sent >= limit:
            continue
        if kind == _MOMENT:
            drifted = at_ms >= drift_ms or sent >= drift_tx
            mix = after if drifted else before
            heappush(heap, (arrivals.next_ms(mix), next(seq), _MOMENT, None))
            pattern = mix.pick(rng.random())
            if pattern is not None:
                for draft in pattern.episode(world, rng, at_ms):
                    heappush(heap, (draft[0], next(seq), _TX, (draft, pattern.name)))
                continue
            # a genuine payment happens now: emitted at once, without a trip through the heap
            card = world.random_card(rng)
            merchant_index, amount_eur, channel, device = genuine_payment(world, rng, card)
            if drifted:
                amount_eur *= config.drift_amount_factor
            is_fraud, name = False, None
        else:
            (_, card, merchant_index, amount_eur, channel, device, is_fraud), name = cast("tuple[Draft, str]", item)
        merchant = world.merchants[merchant_index]
        amount = amount_eur * EUR_TO[merchant.currency]
        # cash comes in notes; everything else in cents, and a card test may be for nothing at all
        if channel == "atm":
            amount = max(20.0, round(amount / 20) * 20)
        elif amount_eur > 0:
            amount = max(0.01, round(amount, 2))
        at = start + timedelta(0, 0, 0, at_ms)  # (days, s, µs, ms): positional is twice as fast
        tx = Transaction(
            tx_id=f"tx-{seed}-{sent}", ts=at, card_id=world.cards[card].id, merchant_id=merchant.id,
            amount=amount, currency=merchant.currency, channel=channel, mcc=merchant.mcc,
            country=merchant.country, device_id=device,
        )
        sent += 1
        truth = name if is_fraud else None
        if is_fraud or labels_rng.random() < genuine_share:
            label_ms = at_ms + label_delay.draw_ms()
            labelled_at = start + timedelta(0, 0, 0, label_ms)
            label = Label(tx_id=tx.tx_id, card_id=tx.card_id, is_fraud=is_fraud, labelled_at=labelled_at,
                          source="chargeback" if is_fraud else "analyst")
            heappush(heap, (label_ms, next(seq), _LABEL, Emission(labelled_at, LABELS_RAW, label, truth)))
        yield Emission(at, TRANSACTIONS_RAW, tx, truth)


CSV_COLUMNS = ("tx_id", "ts", "card_id", "merchant_id", "amount", "currency", "channel", "mcc", "country",
               "device_id", "is_fraud", "fraud_pattern")


class CsvRow(NamedTuple):
    transaction: Transaction
    is_fraud: bool | None
    """None when the file does not know (a bare transaction was written)."""
    fraud_pattern: str | None


def write_csv(items: Iterable[Emission | Transaction], path: str | Path) -> int:
    """Write one row per transaction, streaming; labels are skipped. Returns the row count.

    Emissions carry the truth (``is_fraud`` 0/1 and the pattern); a bare Transaction's
    ``is_fraud`` is left empty, because nobody knows it yet.
    """
    rows = 0
    is_fraud: int | str
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for item in items:
            if isinstance(item, Emission):
                if item.topic != TRANSACTIONS_RAW or not isinstance(item.event, Transaction):
                    continue
                tx, pattern, is_fraud = item.event, item.fraud_pattern, int(item.fraud_pattern is not None)
            else:
                tx, pattern, is_fraud = item, None, ""
            writer.writerow((tx.tx_id, tx.ts.isoformat(), tx.card_id, tx.merchant_id, tx.amount, tx.currency,
                             tx.channel, tx.mcc, tx.country, tx.device_id or "", is_fraud, pattern or ""))
            rows += 1
    return rows


def read_csv(path: str | Path) -> Iterator[CsvRow]:
    """The rows of a file :func:`write_csv` wrote, validated; a bad row raises ValueError
    naming its line."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        if tuple(next(reader, ())) != CSV_COLUMNS:
            raise ValueError(f"{path}: header is not {','.join(CSV_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(CSV_COLUMNS):
                raise ValueError(f"{path}:{line}: {len(row)} columns, expected {len(CSV_COLUMNS)}")
            tx_id, ts, card_id, merchant_id, amount, currency, channel, mcc, country, device, fraud, pattern = row
            try:
                tx = Transaction(tx_id=tx_id, ts=ts, card_id=card_id, merchant_id=merchant_id, amount=float(amount),
                                 currency=currency, channel=channel, mcc=mcc, country=country, device_id=device or None)
            except (ValidationError, ValueError) as exc:
                reason = explain(exc) if isinstance(exc, ValidationError) else str(exc)
                raise ValueError(f"{path}:{line}: {reason}") from exc
            yield CsvRow(tx, None if fraud == "" else fraud == "1", pattern or None)


_MOMENT, _TX, _LABEL = 0, 1, 2


def _drift_point(config: SimulatorConfig) -> tuple[float, float]:
    """(event-time ms, transaction index) from which traffic is drifted; inf for never."""
    if config.drift_at is None:
        return math.inf, math.inf
    if isinstance(config.drift_at, int):
        return math.inf, config.drift_at
    return (config.drift_at - config.start) / timedelta(milliseconds=1), math.inf


class _Arrivals:
    """Moments of traffic: a Poisson process whose rate follows :data:`RHYTHM` hour by hour.

    Sampled exactly: draw a unit exponential (the traffic to wait for) and spend it hour by
    hour at each hour's rate."""

    def __init__(self, config: SimulatorConfig, rng: Random):
        mean = sum(RHYTHM) / len(RHYTHM)
        self.tx_per_s = [mean_tx_per_s(config) * r / mean for r in RHYTHM]
        self.start_s = config.start.hour * 3600 + config.start.minute * 60 + config.start.second
        self.rng, self.t_s = rng, 0.0

    def next_ms(self, mix: FraudMix) -> int:
        wait, t = self.rng.expovariate(1.0), self.t_s
        while True:
            hour = int((self.start_s + t) // 3600)
            rate = self.tx_per_s[hour % 24] / mix.tx_per_moment  # an episode moment brings several transactions
            hour_end = (hour + 1) * 3600 - self.start_s
            if wait < rate * (hour_end - t):
                self.t_s = t + wait / rate
                return int(self.t_s * 1000)
            wait -= rate * (hour_end - t)
            t = hour_end


class _LabelDelay:
    def __init__(self, config: SimulatorConfig, rng: Random):
        self.sigma = config.label_delay_sigma
        self.mu = math.log(config.label_delay_mean.total_seconds()) - self.sigma**2 / 2  # so the mean is as asked
        self.rng = rng

    def draw_ms(self) -> int:
        """At least a second: a label always comes after its transaction."""
        return max(1000, round(1000 * self.rng.lognormvariate(self.mu, self.sigma)))
