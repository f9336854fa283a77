"""The online feature store: Redis state per card and per merchant, one round trip per batch.

Keys (``P`` = ``settings.redis_prefix``; each hash-tagged by its entity for Redis Cluster):

==========================  ======  ==============================================  ==================
key                         type    content                                         TTL (refreshed)
==========================  ======  ==============================================  ==================
``P:{card:C}:tx``           ZSET    score ts, member amount|country|channel|        30 d + lateness
                                    len(merchant)|merchant|tx_id                    (at most daily,
                                                                                    to TTL + 1 d)
``P:{card:C}:windows``      STRING  msgpack: per running window edge, count, exact  expires with
                                    sum (and sum of squares if a zscore reads it),  ``tx``
                                    oldest ts counted; newest ts and member, TTL
                                    deadlines, members prunable
``P:{card:C}:merchants``    HASH    merchant_id → earliest ts the card used it      180 d (daily)
``P:{card:C}:last``         ZSET    merchant_id by the newest ts the card used it   as ``tx``
``P:{card:C}:fv:T``         STRING  version|ts|age|card and tx values|merchant_id   ``feature_ttl_s``
``P:{merchant:M}:tx``       ZSET    score UTC hour, member hour|running total|      30 d + lateness
                                    newest ts (hourly prefix sums, ≤ ~900 members)  + 7 d skew
``P:{merchant:M}:fraud``    ZSET    score earliest fraud labelled_at, member tx_id  as above
``P:{merchant:M}:labels``   ZSET    score earliest labelled_at, member tx_id        as above
``P:{merchant:M}:fv:T``     STRING  age|merchant values                             ``feature_ttl_s``
``P:featureset:V``          STRING  JSON: the names in each part of version V       ``feature_ttl_s``
==========================  ======  ==============================================  ==================

A transaction costs the same whatever its card's history (card.lua): each window keeps a
running count, sum and sum of squares, and only the events that just left it are read.
The fixed cost is kept low too: a card's state is read and written once per batch, TTLs
are refreshed at most daily (``TTL_SLACK_S``) and history pruned a few members at a time
(``PRUNE_EVERY``): a light card's transaction takes about 8 commands, its merchant's 16.
Card windows are exact (equal to reference.py to the bit) for every transaction within
``max_lateness_s`` of its card's newest; one further behind is refused (lateness follows
the card: another card's clock, or a backfill beside live traffic, never makes it late).

Merchant windows, which every input partition updates, count exactly the transactions
applied before with an hour in the window, as the reference does in arrival order, for a
transaction up to ``PARTITION_SKEW_S`` behind the merchant's newest. When partitions
drift apart (a restart, replay or backlog), that differs from a replay in event-time
order by exactly the lagging partitions' transactions not yet applied: an undercount,
never an overcount, bounded by what the lagging partitions hold between their position
and the transaction's hour. Further behind than the skew, a window that reaches into the
dropped hours counts only the hours kept (an undercount by what the dropped ones held).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from redis.exceptions import NoScriptError

from services.features.definitions import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    LAYOUT,
    UNKNOWN_TX,
    FeatureResult,
    Layout,
    Refused,
    Watermark,
    epoch_s,
    history_member,
    too_late,
    transaction_features,
)  # fmt: skip
from services.features.scripts import Scripts
from shared.events import Label, Transaction
from shared.redis import AsyncPipeline, AsyncRedis, key, slot_groups
from shared.settings import Settings

__all__ = ["FeatureResult", "FeatureStore", "Refused", "Watermark"]

CALL_TX = 50
"""Transactions per script call. A batch's calls go in one pipeline (still one round trip),
but Redis runs each call alone: while a script runs, every other client waits, and past
``busy-reply-threshold`` (5 s) all of them get BUSY. A transaction costs ~130 µs of Redis
CPU (docs/benchmarks.md), so a call of 50 holds Redis ~7 ms; a whole batch of 500 in one
call held it ~65 ms idle and ran past 5 s on cores shared twenty ways (the soak, issue 14)."""


@dataclass(frozen=True)
class _Op:
    """One operation of batch.lua: its keys and its arguments."""

    keys: list[str]
    args: list[str]


def _merge(ops: list[_Op]) -> _Op:
    return _Op([k for op in ops for k in op.keys], [a for op in ops for a in op.args])


def _late(card_reply: bytes | str) -> bool:
    return _text(card_reply).startswith("late|")


@dataclass(frozen=True)
class StoredVector:
    ts: float
    """The transaction's event time, epoch seconds."""
    features: dict[str, float]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _floats(csv: str) -> list[float]:
    return [float(v) for v in csv.split(",")]


class FeatureStore:
    """Point-in-time features for batches of transactions, and the vectors kept for labels."""

    def __init__(self, redis: AsyncRedis, settings: Settings):
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis_prefix
        self.vector_ttl_s = settings.feature_ttl_s
        self.layouts = {FEATURE_SET_VERSION: LAYOUT}
        self.layout_json = orjson.dumps(dataclasses.asdict(LAYOUT))
        self.scripts = Scripts(settings)

    def _key(self, entity: str, entity_id: str, *parts: str) -> str:
        return key(self.settings, entity, entity_id, *parts)

    async def apply(self, txs: list[Transaction]) -> list[FeatureResult | Refused]:
        """Compute each transaction's features from the state before it, then record it.

        One round trip for the whole batch on a single Redis, in script calls of at most
        ``CALL_TX`` transactions; under Redis Cluster calls per hash slot, cards first,
        then the merchants of the transactions their cards took (two round trips). Results in input order. Applying
        a transaction again returns what it got the first time and changes nothing; one
        too far behind its card's newest event is refused, unless applied before.
        """
        if not txs:
            return []
        if self.settings.redis_cluster:
            cards = await self._run([self._card_op(tx) for tx in txs], self._remember_layout)
            merchants = await self._run([self._merchant_op(tx, 0) if not _late(c) else None
                                         for tx, c in zip(txs, cards)])  # fmt: skip
        else:
            # a merchant op names its card op by position in its call: pairs never straddle calls
            ops = [op for i, tx in enumerate(txs)
                   for op in (self._card_op(tx), self._merchant_op(tx, 2 * (i % CALL_TX) + 1))]  # fmt: skip
            replies = await self._run(ops, self._remember_layout, per_call=2 * CALL_TX)
            cards, merchants = replies[0::2], replies[1::2]
        # a transaction first applied by an older deployment keeps that version's vector
        await self._learn_layouts({_text(c).split("|", 1)[0] for c in cards if not _late(c)})
        return [self._refused(tx, _text(c)) if _late(c) else self._result(_text(c), _text(m))
                for tx, c, m in zip(txs, cards, merchants)]  # fmt: skip

    def _remember_layout(self, pipe: AsyncPipeline) -> None:
        # the names behind this version live as long as the vectors written with it
        pipe.set(f"{self.prefix}:featureset:{FEATURE_SET_VERSION}", self.layout_json, ex=self.vector_ttl_s)

    def _card_op(self, tx: Transaction) -> _Op:
        card = self._key("card", tx.card_id)
        tx_values = ",".join(map(repr, transaction_features(tx).values()))
        keys = [f"{card}:tx", f"{card}:merchants", f"{card}:last", f"{card}:windows", f"{card}:fv:{tx.tx_id}"]
        return _Op(keys, ["card", repr(epoch_s(tx.ts)), history_member(tx), tx_values])

    def _merchant_op(self, tx: Transaction, card_op: int) -> _Op:
        merchant = self._key("merchant", tx.merchant_id)
        keys = [f"{merchant}:tx", f"{merchant}:fraud", f"{merchant}:labels", f"{merchant}:fv:{tx.tx_id}"]
        return _Op(keys, ["merchant", repr(epoch_s(tx.ts)), str(card_op)])

    async def _run(self, ops: Sequence[_Op | None], also: Callable[[AsyncPipeline], None] | None = None,
                   per_call: int = CALL_TX) -> list:
        """One reply per op (None for a None op): ops grouped by Cluster slot (one group on
        a single Redis), each group in script calls of at most ``per_call`` ops, in order,
        every call in one pipeline."""
        present = {i: op for i, op in enumerate(ops) if op is not None}
        indexes = list(present)
        groups = [[indexes[j] for j in group[start : start + per_call]]
                  for group in slot_groups(self.settings, [op.keys[0] for op in present.values()])
                  for start in range(0, len(group), per_call)]  # fmt: skip

        def queue(pipe: AsyncPipeline) -> None:
            if also:
                also(pipe)
            for group in groups:
                call = _merge([present[i] for i in group])
                pipe.evalsha(self.scripts.batch.sha, len(call.keys), *call.keys, *call.args)

        replies = await self._execute(queue)
        out: list = [None] * len(ops)
        for group, reply in zip(groups, replies[1 if also else 0 :]):
            for i, value in zip(group, reply):
                out[i] = value
        return out

    def _refused(self, tx: Transaction, late: str) -> Refused:
        return Refused(too_late(float(late.split("|")[1]) - epoch_s(tx.ts), self.settings.max_lateness_s))

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
        for script in self.scripts:
            await self.redis.script_load(script.source)

    async def _execute(self, queue: Callable[[AsyncPipeline], object]) -> list:
        """Queue commands on a fresh pipeline and run it: one round trip."""
        try:
            return await self._pipeline(queue).execute()
        except NoScriptError:
            # Redis lost the scripts (restart, SCRIPT FLUSH): load them and run the batch
            # again, which is safe because every script applies at most once.
            await self.load_scripts()
            return await self._pipeline(queue).execute()

    def _pipeline(self, queue: Callable[[AsyncPipeline], object]) -> AsyncPipeline:
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe)
        return pipe

    async def _card_parts(self, keys: list[tuple[str, str]]) -> list[tuple[str, str, str, float] | None]:
        """(version, values, merchant_id, ts) of each stored card part, or None."""
        replies = await self._execute(lambda pipe: [pipe.get(self._key("card", c, "fv", t)) for c, t in keys])
        parts = [_text(r).split("|", 4) if r is not None else None for r in replies]
        return [(p[0], p[3], p[4], float(p[1])) if p else None for p in parts]

    async def apply_labels(self, labels: list[Label]) -> list[str | None]:
        """Record labels where the merchant features will see them.

        Two round trips per batch: the labelled transactions' merchants are read from
        their stored vectors first. Returns, per label, None when applied or why not. A
        transaction's label counts from its earliest ``labelled_at``, and as a fraud from
        its earliest fraud label: a redelivered or repeated label changes nothing.
        """
        if not labels:
            return []
        parts = await self._card_parts([(label.card_id, label.tx_id) for label in labels])
        known = [(label, part[2]) for label, part in zip(labels, parts) if part]
        if known:
            await self._execute(lambda pipe: self._queue_labels(pipe, known))
        return [None if part else UNKNOWN_TX for part in parts]

    def _queue_labels(self, pipe: AsyncPipeline, labels: list[tuple[Label, str]]) -> None:
        for label, merchant_id in labels:
            merchant = self._key("merchant", merchant_id)
            pipe.evalsha(self.scripts.label.sha, 3, f"{merchant}:tx", f"{merchant}:fraud", f"{merchant}:labels",
                         repr(epoch_s(label.labelled_at)), label.tx_id, "1" if label.is_fraud else "0")  # fmt: skip

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
