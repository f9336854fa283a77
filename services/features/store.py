"""The online feature store: Redis state per card and per merchant, one round trip per batch.

Keys (``P`` = ``settings.redis_prefix``; each hash-tagged by its entity for Redis Cluster):

==========================  ======  ==============================================  ==================
key                         type    content                                         TTL (refreshed)
==========================  ======  ==============================================  ==================
``P:{card:C}:tx``           ZSET    score ts, member amount|country|channel|        30 d + lateness
                                    len(merchant)|merchant|tx_id
``P:{card:C}:merchants``    HASH    merchant_id → earliest ts the card used it      180 d
``P:{card:C}:fv:T``         STRING  version|ts|age|card and tx values|merchant_id   ``feature_ttl_s``
``P:{merchant:M}:tx``       ZSET    score UTC hour, member hour|running total|      30 d + lateness
                                    newest ts (hourly prefix sums, ≤ ~745 members)  + 1 d skew
``P:{merchant:M}:fraud``    ZSET    score earliest labelled_at, member tx_id        as above
``P:{merchant:M}:fv:T``     STRING  age|merchant values                             ``feature_ttl_s``
``P:featureset:V``          STRING  JSON: the names in each part of version V       ``feature_ttl_s``
==========================  ======  ==============================================  ==================

Windows are pruned by event time as transactions arrive, so they are exact only for a
transaction within ``max_lateness_s`` of the newest on its partition (the caller checks
with a :class:`Watermark` before the store) and, for merchants, whose state every
partition shares, within a further ``PARTITION_SKEW_S`` of the newest anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import dataclasses
import hashlib
import math
from datetime import datetime
from importlib import resources
from typing import Callable

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from shared.events import Label, Transaction
from shared.redis import key
from shared.settings import Settings
from services.features.definitions import (
    AGE_CAP_S, DAY, FEATURE_NAMES, FEATURE_SET_VERSION, LAYOUT, UNKNOWN_TX, Entity, FeatureResult, Layout,
    by_entity, epoch_s, history_member, transaction_features,
)  # fmt: skip

__all__ = ["FeatureResult", "FeatureStore", "Watermark"]

SEEN_MERCHANTS_TTL_S = 180 * DAY
"""A card idle this long (wall clock) forgets its merchants: all are new to it again."""
PARTITION_SKEW_S = DAY
"""How far apart in event time input partitions may run (consumer lag, replays); merchant
state, which every partition updates, keeps this much more history."""


class Watermark:
    """The newest event time seen on one input partition, and what is too late behind it.

    >>> w = Watermark(max_lateness_s=3600)
    >>> w.observe(10_000.0); w.is_too_late(6_400.0), w.is_too_late(6_399.0)
    (False, True)
    """

    def __init__(self, max_lateness_s: float):
        self.max_lateness_s = max_lateness_s
        self.newest = -math.inf

    def observe(self, ts: datetime | float) -> None:
        self.newest = max(self.newest, epoch_s(ts))

    def is_too_late(self, ts: datetime | float) -> bool:
        return epoch_s(ts) < self.newest - self.max_lateness_s

    def reason(self, ts: datetime | float) -> str:
        behind = self.newest - epoch_s(ts)
        return f"too late: {behind:.0f}s behind the partition's newest event, limit {self.max_lateness_s:.0f}s"


@dataclass(frozen=True)
class StoredVector:
    ts: float
    """The transaction's event time, epoch seconds."""
    features: dict[str, float]


class _Script:
    """A Lua script with the store's constants prepended, run by SHA inside a pipeline."""

    def __init__(self, filename: str, constants: dict[str, object]):
        header = "".join(f"local {name} = {_lua(value)}\n" for name, value in constants.items())
        self.source = header + resources.files(__package__).joinpath(filename).read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


def _lua(value: object) -> str:
    """A Python constant as a Lua literal (floats by repr, so Lua reads the same double)."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(map(_lua, value)) + "}"
    return repr(value)


def _specs(entity: Entity) -> dict[str, object]:
    features = by_entity(entity)
    return {
        "AGGREGATIONS": [f.aggregation for f in features],
        "WINDOWS": [f.window_s for f in features],
        "LONGEST": max(f.window_s for f in features),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _floats(csv: str) -> list[float]:
    return [float(v) for v in csv.split(",")]


class FeatureStore:
    """Point-in-time features for batches of transactions, and the vectors kept for labels."""

    def __init__(self, redis: aioredis.Redis, settings: Settings):
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis_prefix
        self.vector_ttl_s = settings.feature_ttl_s
        self.layouts = {FEATURE_SET_VERSION: LAYOUT}
        self.layout_json = orjson.dumps(dataclasses.asdict(LAYOUT))
        # History older than this before a transaction serves no window of a later one.
        card_retention = float(max(f.window_s for f in by_entity("card")) + settings.max_lateness_s)
        merchant_retention = float(
            max(f.window_s for f in by_entity("merchant")) + settings.max_lateness_s + PARTITION_SKEW_S
        )
        merchant = {"RETENTION": merchant_retention, "HISTORY_TTL": math.ceil(merchant_retention)}
        self.card_script = _Script("card.lua", _specs("card") | {
            "AGE_CAP": AGE_CAP_S, "RETENTION": card_retention, "HISTORY_TTL": math.ceil(card_retention),
            "MERCHANTS_TTL": SEEN_MERCHANTS_TTL_S, "VECTOR_TTL": self.vector_ttl_s, "VERSION": FEATURE_SET_VERSION,
        })  # fmt: skip
        self.merchant_script = _Script(
            "merchant.lua", _specs("merchant") | merchant | {"AGE_CAP": AGE_CAP_S, "VECTOR_TTL": self.vector_ttl_s}
        )
        self.label_script = _Script("label.lua", merchant)

    def _key(self, entity: str, entity_id: str, *parts: str) -> str:
        return key(self.settings, entity, entity_id, *parts)

    async def apply(self, txs: list[Transaction], late: list[bool] | None = None) -> list[FeatureResult | None]:
        """Compute each transaction's features from the state before it, then record it.

        One Redis round trip for the whole batch (a card and a merchant script per
        transaction in one pipeline); results in input order. Applying a transaction again
        returns what it got the first time and changes nothing. A transaction flagged
        ``late`` gets its stored result if it was applied before, else None (refused).
        """
        if not txs:
            return []
        late = late or [False] * len(txs)
        replies = await self._execute(lambda pipe: self._queue_apply(pipe, txs, late))
        cards, merchants = replies[1::2], replies[2::2]
        # a transaction first applied by an older deployment keeps that version's vector
        await self._learn_layouts({_text(card).split("|", 1)[0] for card in cards if card is not None})
        return [None if card is None or merchant is None else self._result(_text(card), _text(merchant))
                for card, merchant in zip(cards, merchants)]

    def _queue_apply(self, pipe: Pipeline, txs: list[Transaction], late: list[bool]) -> None:
        # the names behind this version live as long as the vectors written with it
        pipe.set(f"{self.prefix}:featureset:{FEATURE_SET_VERSION}", self.layout_json, ex=self.vector_ttl_s)
        for tx, is_late in zip(txs, late):
            flag = "late" if is_late else "on-time"
            ts = repr(epoch_s(tx.ts))
            card, merchant = self._key("card", tx.card_id), self._key("merchant", tx.merchant_id)
            tx_values = ",".join(map(repr, transaction_features(tx).values()))
            pipe.evalsha(self.card_script.sha, 3, f"{card}:tx", f"{card}:merchants", f"{card}:fv:{tx.tx_id}",
                         ts, history_member(tx), tx_values, flag)  # fmt: skip
            pipe.evalsha(self.merchant_script.sha, 3, f"{merchant}:tx", f"{merchant}:fraud",
                         f"{merchant}:fv:{tx.tx_id}", ts, flag)  # fmt: skip

    def _result(self, card: str, merchant: str) -> FeatureResult:
        version, _, card_age, card_values, _ = card.split("|", 4)
        merchant_age, merchant_values = merchant.split("|")
        features = self._vector(version, card_values, merchant_values) or {}
        if version == FEATURE_SET_VERSION:
            features = {name: features[name] for name in FEATURE_NAMES}  # the table's order
        return FeatureResult(features, {"card": float(card_age), "merchant": float(merchant_age)}, version)

    def _vector(self, version: str, card_values: str, merchant_values: str) -> dict[str, float] | None:
        layout = self.layouts.get(version)
        if layout is None:
            return None
        return dict(zip(layout.card, _floats(card_values))) | dict(zip(layout.merchant, _floats(merchant_values)))

    async def _learn_layouts(self, versions: set[str]) -> None:
        """Read the names of feature-set versions this process does not know (rare: one
        round trip the first time an older version's vector turns up)."""
        unknown = sorted(versions - set(self.layouts))
        if not unknown:
            return
        replies = await self._execute(lambda pipe: [pipe.get(f"{self.prefix}:featureset:{v}") for v in unknown])
        for version, names in zip(unknown, replies):
            if names is not None:
                self.layouts[version] = Layout(**{part: tuple(n) for part, n in orjson.loads(names).items()})

    async def load_scripts(self) -> None:
        """Load the Lua scripts (optional: the first batch loads them when Redis lacks them)."""
        for script in (self.card_script, self.merchant_script, self.label_script):
            await self.redis.script_load(script.source)

    async def _execute(self, queue: Callable[[Pipeline], object]) -> list:
        """Queue commands on a fresh pipeline and run it: one round trip."""
        try:
            return await self._pipeline(queue).execute()
        except NoScriptError:
            # Redis lost the scripts (restart, SCRIPT FLUSH): load them and run the batch
            # again, which is safe because every script applies at most once.
            await self.load_scripts()
            return await self._pipeline(queue).execute()

    def _pipeline(self, queue: Callable[[Pipeline], object]) -> Pipeline:
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe)
        return pipe

    async def _card_parts(self, keys: list[tuple[str, str]]) -> list[tuple[str, str, str, float] | None]:
        """(version, values, merchant_id, ts) of each stored card part, or None."""
        replies = await self._execute(lambda pipe: [pipe.get(self._key("card", c, "fv", t)) for c, t in keys])
        parts = [_text(r).split("|", 4) if r is not None else None for r in replies]
        return [(p[0], p[3], p[4], float(p[1])) if p else None for p in parts]

    async def apply_labels(self, labels: list[Label]) -> list[str | None]:
        """Record fraud labels where the merchant features will see them.

        Two round trips per batch: the labelled transactions' merchants are read from
        their stored vectors first. Returns, per label, None when applied (a genuine label
        changes nothing) or why not. A fraud label counts from its earliest ``labelled_at``.
        """
        if not labels:
            return []
        parts = await self._card_parts([(label.card_id, label.tx_id) for label in labels])
        frauds = [(label, part[2]) for label, part in zip(labels, parts) if part and label.is_fraud]
        if frauds:
            await self._execute(lambda pipe: self._queue_labels(pipe, frauds))
        return [None if part else UNKNOWN_TX for part in parts]

    def _queue_labels(self, pipe: Pipeline, frauds: list[tuple[Label, str]]) -> None:
        for label, merchant_id in frauds:
            merchant = self._key("merchant", merchant_id)
            pipe.evalsha(self.label_script.sha, 2, f"{merchant}:tx", f"{merchant}:fraud",
                         repr(epoch_s(label.labelled_at)), label.tx_id)  # fmt: skip

    async def lookup_vectors(self, keys: list[tuple[str, str]]) -> dict[str, dict[str, float] | None]:
        """The full feature vector each (card_id, tx_id) was given, or None if unknown or expired."""
        return {tx_id: (found.features if found else None) for tx_id, found in (await self.lookup(keys)).items()}

    async def lookup(self, keys: list[tuple[str, str]]) -> dict[str, StoredVector | None]:
        """What each (card_id, tx_id) was scored with, and when it happened; None if unknown.

        Two round trips: the card parts, which name the merchant and the feature-set
        version, then the merchant parts (and, rarely, the names of an older version).
        """
        found = [(tx_id, part) for (_, tx_id), part in zip(keys, await self._card_parts(keys)) if part]
        merchants = await self._execute(
            lambda pipe: [pipe.get(self._key("merchant", part[2], "fv", tx_id)) for tx_id, part in found]
        )
        await self._learn_layouts({part[0] for _, part in found})
        vectors: dict[str, StoredVector | None] = {tx_id: None for _, tx_id in keys}
        for (tx_id, (version, card_values, _, ts)), merchant in zip(found, merchants):
            if merchant is not None:
                features = self._vector(version, card_values, _text(merchant).split("|")[1])
                vectors[tx_id] = StoredVector(ts, features) if features is not None else None
        return vectors
