"""Turn raw bytes into a valid event, or say in words why not. Pure: no I/O.

Schema checks (types, ranges, ISO codes) live in the event models; this module adds the
deployment's policy (size, amount ceiling, clock skew, age).

>>> from datetime import datetime, UTC
>>> limits = Limits(max_bytes=1024, max_amount=10_000, max_future_skew_s=300, max_age_days=30)
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> raw = (b'{"tx_id":"t1","ts":"2026-01-01T00:00:00Z","card_id":"c1","merchant_id":"m1",'
...        b'"amount":20000,"currency":"EUR","channel":"pos","mcc":"5411","country":"FR"}')
>>> parse_transaction(raw, limits, now)
Traceback (most recent call last):
...
services.ingest.validate.Rejected: out of range: amount 20000.0 is above the ceiling 10000
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.codec import DecodeError, decode
from shared.events import Label, Transaction
from shared.settings import Settings


class Rejected(ValueError):
    """Input the system cannot accept; the message is the dead letter's reason."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_amount: float
    max_future_skew_s: float
    max_age_days: float

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.max_message_bytes, s.max_amount, s.max_future_skew_s, s.max_age_days)


def _decode(raw: bytes | None, limits: Limits, event_type):
    if raw is None:
        raise Rejected("malformed: empty message (no value)")
    if len(raw) > limits.max_bytes:
        raise Rejected(f"oversized: {len(raw)} bytes is above the limit of {limits.max_bytes}")
    try:
        return decode(raw, event_type)
    except DecodeError as exc:
        raise Rejected(f"malformed: {exc}") from exc


def _check_time(name: str, value: datetime, limits: Limits, now: datetime) -> None:
    # Cheap comparisons first: this runs for every event.
    age_s = (now - value).total_seconds()
    if age_s < -limits.max_future_skew_s:
        raise Rejected(f"out of range: {name} {value.isoformat()} is in the future (now {now.isoformat()})")
    if age_s > limits.max_age_days * 86400:
        raise Rejected(f"out of range: {name} {value.isoformat()} is older than {limits.max_age_days:g} days")


def parse_transaction(raw: bytes | None, limits: Limits, now: datetime) -> Transaction:
    tx = _decode(raw, limits, Transaction)
    if tx.amount > limits.max_amount:
        raise Rejected(f"out of range: amount {tx.amount} is above the ceiling {limits.max_amount:g}")
    _check_time("ts", tx.ts, limits, now)
    return tx


def parse_label(raw: bytes | None, limits: Limits, now: datetime) -> Label:
    label = _decode(raw, limits, Label)
    _check_time("labelled_at", label.labelled_at, limits, now)
    return label
