"""Hostile input for both raw topics, each record with the refusal it must get.

A poison record must come back on ``deadletter`` with its original bytes and a reason that
starts with ``reason``; ``reason`` None marks a record that is odd but legitimate (a
producer's clock a little ahead) and must be scored like any good one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import orjson

from fraudstream.faults.load import Workload
from shared.codec import encode
from shared.events import Label, Transaction, utcnow
from shared.kafka import Out
from shared.topics import LABELS_RAW, TRANSACTIONS_RAW

OVERSIZED = 70 * 1024
"""Above the default ``max_message_bytes`` (64 KiB)."""


@dataclass(frozen=True)
class Poison:
    record: Out
    kind: str
    reason: str | None
    """The dead letter's reason starts with this; None: a legitimate record, to be scored."""


def _tx_json(tx: Transaction, **changes) -> bytes:
    body = orjson.loads(encode(tx)) | changes
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def burst(workload: Workload, seed: int = 5) -> list[Poison]:
    """About forty poison records of every kind, built from the workload's own events."""
    rng = random.Random(seed)
    txs, labels = workload.transactions, workload.labels
    tx: Transaction = txs[len(txs) // 2]
    label: Label = labels[len(labels) // 2]
    key = tx.card_id.encode()
    now = utcnow()
    out: list[Poison] = []

    def add(topic: str, value: bytes | None, kind: str, reason: str | None, k: bytes | None = key) -> None:
        out.append(Poison(Out(topic, k, value), kind, reason))  # type: ignore[arg-type]

    for topic in (TRANSACTIONS_RAW, LABELS_RAW):
        add(topic, rng.randbytes(64), "random bytes", "malformed")
        add(topic, b"\xff\xfe" + rng.randbytes(20), "not UTF-8", "malformed")
        add(topic, b"[1, 2, 3]", "wrong JSON shape", "malformed")
        add(topic, b'{"tx_id": ', "truncated JSON", "malformed")
        add(topic, b"null", "JSON null", "malformed")
        add(topic, None, "null value (tombstone)", "malformed", k=None)
        add(topic, b"", "empty value", "malformed")
        add(topic, b"x" * OVERSIZED, "oversized", "oversized")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-null-card", card_id=None), "null field", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-empty-card", card_id=""), "empty field", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-no-amount", amount=...), "missing field", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-amount-str", amount="12,50"), "wrong type", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-negative", amount=-5.0), "negative amount", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-huge", amount=5e9), "amount above ceiling", "out of range")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-nan", amount="NaN"), "NaN amount", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-currency", currency="XXQ"), "unknown currency", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-epoch", ts=1767225600), "numeric timestamp", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-naive", ts="2026-01-01T00:00:00"), "naive timestamp", "malformed")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-future", ts=(now + timedelta(days=2)).isoformat()),
        "timestamp days ahead", "out of range")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-ancient", ts=(now - timedelta(days=800)).isoformat()),
        "timestamp years old", "out of range")
    add(TRANSACTIONS_RAW, _tx_json(tx, tx_id="p-extra", surprise=1), "unknown field", "malformed")
    # A producer whose clock runs a few minutes ahead (inside the skew allowed), on a card
    # of its own: legitimate, and it must not make anybody else's transactions "too late".
    skewed = tx.model_copy(update={"tx_id": "p-skewed-clock", "card_id": "card-skewed-clock",
                                   "ts": now + timedelta(seconds=120)})
    add(TRANSACTIONS_RAW, encode(skewed), "clock minutes ahead (legitimate)", None, k=b"card-skewed-clock")
    for dup in txs[:3]:
        add(TRANSACTIONS_RAW, encode(dup), "duplicate transaction", "duplicate", k=dup.card_id.encode())
    for resent in labels[:2]:
        add(LABELS_RAW, encode(resent), "duplicate label", "duplicate", k=resent.card_id.encode())
    for i in range(3):
        ghost = Label(tx_id=f"p-ghost-{i}", card_id=label.card_id, is_fraud=bool(i % 2),
                      labelled_at=label.labelled_at, source="chargeback")
        add(LABELS_RAW, encode(ghost), "label of an unknown transaction", "unknown or expired tx_id")
    add(LABELS_RAW, orjson.dumps(orjson.loads(encode(label)) | {"tx_id": "p-fraud-str", "is_fraud": "maybe"}),
        "label of wrong type", "malformed")
    add(LABELS_RAW, orjson.dumps(orjson.loads(encode(label)) | {"tx_id": "p-label-epoch", "labelled_at": 1767225600}),
        "label with numeric timestamp", "malformed")
    add(LABELS_RAW, orjson.dumps(orjson.loads(encode(label)) | {"tx_id": "p-label-future",
                                                                "labelled_at": (now + timedelta(days=3)).isoformat()}),
        "label from the future", "out of range")
    return out
