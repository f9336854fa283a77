"""Read every output of a run back and account for every input.

:class:`ReadBack` follows the output topics from the beginning (no consumer group) in the
background and keeps a compact summary; :func:`account` compares it with what went in.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Set
from dataclasses import dataclass, field

import orjson

from fraudstream.simulator.traffic import Emission
from services.features.definitions import FEATURES_BY_NAME, Refused
from services.features.reference import ReferenceFeatures
from shared.codec import DecodeError, decode
from shared.events import DeadLetter, EnrichedTransaction, Label, ModelVersionPublished, Score, Transaction
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import DEADLETTER, LABELS, MODEL_VERSIONS, SCORES, TRANSACTIONS_ENRICHED

WATCHED = (SCORES, DEADLETTER, MODEL_VERSIONS, TRANSACTIONS_ENRICHED)


@dataclass
class ReadBack:
    settings: Settings
    scores: dict[str, list[Score]] = field(default_factory=lambda: defaultdict(list))
    enriched: dict[str, EnrichedTransaction] = field(default_factory=dict)
    """The first enriched copy of each transaction (``enriched_copies`` counts them all)."""
    enriched_copies: Counter = field(default_factory=Counter)
    letters: list[DeadLetter] = field(default_factory=list)
    versions: list[ModelVersionPublished] = field(default_factory=list)
    accepted: dict[str, Counter] = field(default_factory=dict)
    """Topic → copies of each tx_id ingest accepted there (``transactions.valid``, ``labels``), when followed."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> ReadBack:
        consumer = make_consumer(self.settings, *WATCHED, *self.accepted, group=None)
        await consumer.start()
        self._task = asyncio.create_task(self._follow(consumer))
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _follow(self, consumer) -> None:
        wait = FetchWait("accounting", consumer, self.settings.fetch_max_wait_ms)
        try:
            while not self._stop.is_set():
                for tp, batch in (await wait.poll(timeout_ms=100)).items():
                    topic = tp.topic.removeprefix(self.settings.topic_prefix)
                    for record in batch:
                        self._keep(topic, record.value)
        finally:
            await consumer.stop()

    def _keep(self, topic: str, value: bytes) -> None:
        if topic == SCORES:
            score = decode(value, Score)
            self.scores[score.tx_id].append(score)
        elif topic == TRANSACTIONS_ENRICHED:
            enriched = decode(value, EnrichedTransaction)
            self.enriched.setdefault(enriched.transaction.tx_id, enriched)
            self.enriched_copies[enriched.transaction.tx_id] += 1
        elif topic == DEADLETTER:
            self.letters.append(decode(value, DeadLetter))
        elif topic == MODEL_VERSIONS:
            self.versions.append(decode(value, ModelVersionPublished))
        else:
            self.accepted[topic][orjson.loads(value)["tx_id"]] += 1

    @property
    def labels_learned(self) -> int:
        """What the latest champion snapshot says it learned (``training_window.labels_seen``)."""
        champions = [v for v in self.versions if v.status == "champion"]
        return champions[-1].training_window.labels_seen if champions else 0

    async def until(self, done, timeout_s: float, every_s: float = 0.1) -> bool:
        """Poll the summary until ``done(self)`` or the deadline; whether it came true."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(every_s)
        return True


def letter_origin(letter: DeadLetter, settings: Settings) -> tuple[str, bytes | str]:
    """What a dead letter refused: ingest's carry the producer's bytes (topic, bytes); a later
    stage's carry the event as ingest passed it on, known by its tx_id (topic, tx_id)."""
    topic = letter.topic.removeprefix(settings.topic_prefix)
    if letter.service == "ingest":
        return topic, letter.payload
    try:
        return topic, orjson.loads(letter.payload)["tx_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return topic, letter.payload  # not an event at all: refused at a later boundary


def poison_origin(poison) -> tuple[str, bytes | str]:
    """Where a poison record's dead letter comes from, in :func:`letter_origin`'s terms."""
    if poison.reason.startswith("unknown or expired tx_id"):  # refused by the learner, off ``labels``
        return LABELS, orjson.loads(poison.record.value)["tx_id"]
    return poison.record.topic, poison.record.value or b""


@dataclass
class Account:
    """One run's figures: what the fault table prints."""

    run: str
    n: int
    scored: int
    conflicting_duplicates: int
    """Transactions scored twice by the same model version with different scores."""
    labels_expected: int
    labels_learned: int
    labels_dead_lettered: int
    card_values_off: int
    merchant_values_off: int
    poison_expected: int = 0
    poison_dead_lettered: int = 0
    good_refused: list[str] = field(default_factory=list)
    wrong_reasons: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    """Kinds of poison with no dead letter."""
    recovery_gap_s: float = 0.0
    """The longest a transaction waited from ingest to its score (received → scored)."""
    exits: list[tuple[str, int]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.n - self.scored

    ROW = "{:<24} {:>11} {:>5} {:>9} {:>13} {:>11} {:>11} {:>9} {:>8} {:>8}"
    HEADER = ROW.format("run", "scored/N", "lost", "dup diff", "learned/exp", "labels DLQ", "feat off c/m",
                        "poison", "refused", "gap s")

    def row(self) -> str:
        poison = f"{self.poison_dead_lettered}/{self.poison_expected}" if self.poison_expected else "-"
        return self.ROW.format(self.run, f"{self.scored}/{self.n}", self.lost, self.conflicting_duplicates,
                               f"{self.labels_learned}/{self.labels_expected}", self.labels_dead_lettered,
                               f"{self.card_values_off}/{self.merchant_values_off}", poison,
                               len(self.good_refused), f"{self.recovery_gap_s:.1f}")


def expected_labels(emissions: list[Emission]) -> int:
    """Labels the learner must learn exactly once (with ``genuine_sample_rate`` 1: all of them)."""
    return len({e.event.tx_id for e in emissions if isinstance(e.event, Label)})


def features_off(emissions: list[Emission], enriched: dict[str, EnrichedTransaction]) -> tuple[int, int]:
    """Feature values that differ from the reference fed the stream in event-time order:
    (card, merchant) counts over every enriched transaction."""
    reference = ReferenceFeatures()
    card = merchant = 0
    for e in emissions:
        if isinstance(e.event, Label):
            reference.apply_label(e.event)
            continue
        result = reference.apply(e.event)
        got = enriched.get(e.event.tx_id)
        if got is None or isinstance(result, Refused):  # never enriched: nothing to compare
            continue
        expected = result.features
        for name, value in expected.items():
            if abs(got.features.get(name, float("nan")) - value) > 1e-9 * max(1.0, abs(value)):
                if FEATURES_BY_NAME[name].entity == "merchant":
                    merchant += 1
                else:
                    card += 1
    return card, merchant


def account(run: str, settings: Settings, emissions: list[Emission], seen: ReadBack,
            poison: list | None = None, warm: Set[str] = frozenset()) -> Account:
    """Every good transaction scored, every label learned once, every poison refused."""
    good_txs = [e.event for e in emissions if isinstance(e.event, Transaction)]
    legit = [p.record for p in poison or [] if p.reason is None]
    good_ids = {tx.tx_id for tx in good_txs} | {decode(r.value, Transaction).tx_id for r in legit}
    scored = good_ids & set(seen.scores)
    conflicts = 0
    for tx_id in scored:
        by_version: dict[str, set[float]] = defaultdict(set)
        for s in seen.scores[tx_id]:
            by_version[s.model_version].add(s.score)
        conflicts += any(len(v) > 1 for v in by_version.values())
    gap = max((s.stages["scored"] - s.stages["received"] for tx_id in scored - warm for s in seen.scores[tx_id][:1]
               if "received" in s.stages and "scored" in s.stages), default=0.0)
    card_off, merchant_off = features_off(emissions, seen.enriched)
    result = Account(run, len(good_ids), len(scored), conflicts, expected_labels(emissions), seen.labels_learned,
                     0, card_off, merchant_off, recovery_gap_s=gap)
    _judge_letters(result, settings, emissions, seen, poison or [])
    return result


def _judge_letters(result: Account, settings: Settings, emissions: list[Emission], seen: ReadBack,
                   poison: list) -> None:
    refused = [p for p in poison if p.reason is not None]
    expected = Counter(poison_origin(p) for p in refused)
    reasons = {poison_origin(p): p.reason for p in refused}
    result.poison_expected = sum(expected.values())
    answered: Counter = Counter()
    for letter in seen.letters:
        origin = letter_origin(letter, settings)
        if letter.service == "learner":
            result.labels_dead_lettered += 1
        if origin in expected and answered[origin] < expected[origin]:
            answered[origin] += 1
            if not letter.error.startswith(reasons[origin]):
                result.wrong_reasons.append(f"{letter.service}: {letter.error[:100]}")
            continue
        if origin in answered:
            continue  # the same refusal again after a redelivery
        result.good_refused.append(f"{letter.service} {origin[0]}: {letter.error[:120]}")
    result.poison_dead_lettered = sum(answered.values())
    kinds = {poison_origin(p): p.kind for p in refused}
    result.unanswered = sorted(kinds[o] for o in expected if answered[o] < expected[o])


def is_label(value: bytes) -> bool:
    try:
        decode(value, Label)
        return True
    except DecodeError:
        return False


@dataclass
class FuzzAccount:
    """Where every fuzzed input went: each one accepted by ingest or dead-lettered by it,
    each accepted transaction scored or dead-lettered, each accepted label learned or
    dead-lettered."""

    inputs: int
    refused_by_ingest: int
    accepted_transactions: int
    accepted_labels: int
    scored: int
    transactions_dead_lettered: int
    labels_learned: int
    labels_dead_lettered: int
    reasons: Counter

    @property
    def unaccounted_inputs(self) -> int:
        return self.inputs - self.refused_by_ingest - self.accepted_transactions - self.accepted_labels

    @property
    def unaccounted_transactions(self) -> int:
        return self.accepted_transactions - self.scored - self.transactions_dead_lettered

    @property
    def unaccounted_labels(self) -> int:
        return self.accepted_labels - self.labels_learned - self.labels_dead_lettered


def account_fuzz(inputs: int, seen: ReadBack, transactions: str, labels: str) -> FuzzAccount:
    """Counts from the read-back; a letter seen twice (a redelivery) counts once."""
    by_origin = {(x.service, x.topic, x.partition, x.offset): x for x in seen.letters}
    letters = list(by_origin.values())
    accepted_txs, accepted_labels = seen.accepted[transactions].keys(), seen.accepted[labels].keys()
    tx_letters = {decode(x.payload, Transaction).tx_id for x in letters if x.service == "features"}
    label_letters = {decode(x.payload, Label).tx_id for x in letters if x.service == "learner"}
    return FuzzAccount(
        inputs=inputs,
        refused_by_ingest=sum(x.service == "ingest" for x in letters),
        accepted_transactions=len(accepted_txs),
        accepted_labels=len(accepted_labels),
        scored=len(accepted_txs & seen.scores.keys()),
        transactions_dead_lettered=len(accepted_txs & tx_letters),
        labels_learned=seen.labels_learned,
        labels_dead_lettered=len(accepted_labels & label_letters),
        reasons=Counter(f"{x.service}: {x.error.split(':', 1)[0]}" for x in letters),
    )
