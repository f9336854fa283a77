"""A seeded fuzzer for the raw topics: valid events, and the same events bent every way a
producer can bend them (bytes flipped, cut, fields dropped, types swapped, values blown up).

Each input is one record; a run accounts for every one as accepted by ingest (then scored
or dead-lettered downstream) or dead-lettered by ingest, with its reason.

>>> from datetime import UTC
>>> t = datetime(2026, 6, 1, tzinfo=UTC)
>>> inputs = generate(200, seed=1, now=t)
>>> len(inputs), len({i.value for i in inputs if i.value}) > 150
(200, True)
>>> generate(50, seed=1, now=t) == inputs[:50]
True
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import orjson

from shared.events import utcnow
from shared.kafka import Out
from shared.topics import LABELS_RAW, TRANSACTIONS_RAW

CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
CHANNELS = ("pos", "ecom", "atm")
LABEL_SHARE = 0.2
"""Share of inputs sent to ``labels.raw``."""
VALID_SHARE = 0.35
"""Share of inputs left valid (the rest are mutated)."""
WEIRD_VALUES: tuple[object, ...] = (
    None, "", " ", 0, -1, 1e308, -1e308, 2**63, "NaN", "Infinity", True, [], {}, [1, "a"],
    {"a": None}, "\u0000", "\U0001f4b3" * 50, "x" * 5000, "2026-13-45T25:61:00Z", 1.5e-320,
)


def _transaction(rng: random.Random, i: int, now: datetime) -> dict:
    return {"tx_id": f"fz-tx-{i}", "ts": (now - timedelta(seconds=rng.uniform(0, 600))).isoformat(),
            "card_id": f"fz-card-{rng.randrange(500)}", "merchant_id": f"fz-m-{rng.randrange(80)}",
            "amount": round(rng.uniform(0, 3000), 2), "currency": rng.choice(CURRENCIES),
            "channel": rng.choice(CHANNELS), "mcc": f"{rng.randrange(10000):04d}", "country": "FR"}


def _label(rng: random.Random, i: int, now: datetime) -> dict:
    # Labels name transactions the fuzzer also sends (some valid, some not) or none at all.
    return {"tx_id": f"fz-tx-{rng.randrange(max(1, i))}" if rng.random() < 0.5 else f"fz-ghost-{i}",
            "card_id": f"fz-card-{rng.randrange(500)}", "is_fraud": rng.random() < 0.3,
            "labelled_at": (now - timedelta(seconds=rng.uniform(0, 60))).isoformat(), "source": "chargeback"}


def _mutate(rng: random.Random, body: dict, now: datetime) -> bytes:
    kind = rng.randrange(9)
    if kind == 0:  # a field dropped
        body.pop(rng.choice(list(body)))
    elif kind == 1:  # a field given a hostile value
        body[rng.choice(list(body))] = rng.choice(WEIRD_VALUES)
    elif kind == 2:  # a field too many
        body[f"extra_{rng.randrange(5)}"] = rng.choice(WEIRD_VALUES)
    elif kind == 3:  # a timestamp as a number, or skewed far
        field = "ts" if "ts" in body else "labelled_at"
        body[field] = rng.choice([1767225600, (now + timedelta(days=rng.uniform(1, 900))).isoformat(),
                                  (now - timedelta(days=rng.uniform(401, 5000))).isoformat()])
    raw = orjson.dumps(body)
    if kind == 4:  # bytes flipped
        flipped = bytearray(raw)
        for _ in range(rng.randrange(1, 6)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if kind == 5:  # cut short
        return raw[: rng.randrange(len(raw))]
    if kind == 6:  # random bytes, or nothing
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 7:  # nested too deep, or a document of the wrong shape
        return rng.choice([b"[" * 2000 + b"]" * 2000, b'"just a string"', b"42", b"true", b"{}"])
    return raw


def generate(n: int, seed: int = 0, now: datetime | None = None) -> list[Out]:
    """``n`` records for the raw topics (names without prefix): the same for the same seed and ``now``."""
    rng = random.Random(seed)
    now = now or utcnow()
    out = []
    for i in range(n):
        is_label = rng.random() < LABEL_SHARE
        body = _label(rng, i, now) if is_label else _transaction(rng, i, now)
        topic = LABELS_RAW if is_label else TRANSACTIONS_RAW
        value = orjson.dumps(body) if rng.random() < VALID_SHARE else _mutate(rng, body, now)
        key = body["card_id"].encode() if isinstance(body.get("card_id"), str) else None
        out.append(Out(topic, key, value))
    return out
