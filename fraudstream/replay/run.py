"""``fraudstream replay``: a historical file through the real pipeline, in event time.

The events of a :class:`~fraudstream.replay.source.Stream` (transactions and their delayed
labels, in event-time order, read as they are sent) go to ``transactions.raw`` and
``labels.raw`` like any producer's, and the services (ingest, features, scoring, learner) do
the rest. Two rules keep the replay faithful to event time while it runs as fast as the
pipeline can take it:

* at most ``max_in_flight`` transactions are sent and not yet scored (or dead-lettered), so
  the scoring position stays close to the producer's;
* a label is sent only once its transaction has been scored: in the live system a label
  comes days later, long after its transaction's features were stored, and the learner
  refuses a label it cannot join.

Memory does not grow with the file beyond the report's columns (:class:`Scores`, 19 bytes
a scored transaction): the live state is the transactions in flight and the cards of the
labels not yet due. The scores are read back from ``scores`` (the first copy of each:
at-least-once delivery) and transactions refused on the way are counted from the
dead-letter topic with their reasons.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson

from fraudstream.evaluation.report import ScoredRow
from fraudstream.replay.source import Columns, Row, StreamEvent
from shared.kafka import Out, Sender, make_consumer, make_producer, skip_to_end
from shared.lifecycle import wait_set
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import DEADLETTER, LABELS_RAW, SCORES, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW, TRANSACTIONS_VALID

TX_TOPICS = (TRANSACTIONS_RAW, TRANSACTIONS_VALID, TRANSACTIONS_ENRICHED)
"""A dead letter from one of these is a transaction that will never be scored."""
DEFAULT_COLUMNS = Columns()
MORE = ("currency", "mcc", "device")
"""The columns a replay sends besides those ``evaluate`` reads: ``Stream(more=MORE)``."""


class Scores:
    """Every scored transaction, in columns of 8 (time) + 4 (card) + 4 (score) + 2 (model
    version) + 1 (label) = 19 bytes; card ids and versions are kept once each.

    >>> s = Scores()
    >>> s.add(Row(0.0, "t1", "c1", "m1", 5.0, "FR", "pos", True), 0.75, "v1")
    >>> s.add(Row(60.0, "t2", "c1", "m1", 5.0, "FR", "pos", None), 0.25, "untrained")
    >>> len(s), s.nbytes, s.trained
    (2, 38, True)
    >>> [(r.card, r.score, r.model_version, r.label) for r in s.rows()]
    [('c1', 0.75, 'v1', True), ('c1', 0.25, 'untrained', None)]
    """

    def __init__(self) -> None:
        self.ts, self.card, self.score = array("d"), array("i"), array("f")
        self.version, self.label = array("H"), array("b")
        self.cards: dict[str, int] = {}
        self.versions: dict[str, int] = {}

    def add(self, row: Row, score: float, version: str) -> None:
        self.ts.append(row.ts)
        self.card.append(self.cards.setdefault(row.card, len(self.cards)))
        self.score.append(score)
        self.version.append(self.versions.setdefault(version, len(self.versions)))
        self.label.append(-1 if row.label is None else int(row.label))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def nbytes(self) -> int:
        return sum(len(a) * a.itemsize for a in (self.ts, self.card, self.score, self.version, self.label))

    @property
    def trained(self) -> bool:
        """Whether any score came from a trained model (not ``untrained``)."""
        from services.scoring.models import UNTRAINED

        return any(v != UNTRAINED for v in self.versions)

    def rows(self) -> Iterator[ScoredRow]:
        """The report's rows, made as they are read (tx and merchant ids are not kept)."""
        cards, versions = list(self.cards), list(self.versions)
        for ts, card, score, version, label in zip(self.ts, self.card, self.score, self.version, self.label):
            yield ScoredRow("", datetime.fromtimestamp(ts, UTC), cards[card], "", score, versions[version],
                            None if label < 0 else bool(label))


V = TypeVar("V")


class FirstIn(Generic[V]):
    """Values by key, taken in the order put, with no list per key: a list each would be one
    more object for the garbage collector to walk per pending label (at a 7-day delay, most of
    the replay's own time went to collections). A repeated key is the rare case.

    >>> q = FirstIn[str]()
    >>> q.put("t1", "a"); q.put("t2", "b"); q.put("t1", "c")
    >>> q.take("t1"), "t1" in q, q.take("t1"), "t1" in q, len(q)
    ('a', True, 'c', False, 1)
    """

    def __init__(self) -> None:
        self.first: dict[str, V] = {}
        self.later: dict[str, deque[V]] = {}

    def put(self, key: str, value: V) -> None:
        if key in self.first:
            self.later.setdefault(key, deque()).append(value)
        else:
            self.first[key] = value

    def take(self, key: str) -> V:
        """The oldest value of ``key`` (KeyError if none)."""
        value = self.first.pop(key)
        later = self.later.get(key)
        if later:
            self.first[key] = later.popleft()
            if not later:
                del self.later[key]
        return value

    def __contains__(self, key: str) -> bool:
        return key in self.first

    def __len__(self) -> int:
        return len(self.first)


@dataclass(slots=True)
class Pending:
    """A transaction sent and not yet written off: scored, or refused (``score`` stays NaN)."""

    row: Row
    score: float = math.nan
    version: str = ""
    done: bool = False


@dataclass
class Outcome:
    scores: Scores = field(default_factory=Scores)
    refused: Counter[str] = field(default_factory=Counter)
    """Reason (up to the colon) → transactions dead-lettered on the way."""
    labels_refused: Counter[str] = field(default_factory=Counter)
    sent_tx: int = 0
    sent_labels: int = 0
    done: int = 0
    """Transactions scored or refused."""
    wall_s: float = 0.0


class Ledger:
    """The transactions in flight, in the order sent: each is written off by its score or its
    dead letter, and leaves (to ``Scores`` and ``on_scored``) once every earlier one has, so
    what leaves is in event-time order."""

    def __init__(self, outcome: Outcome, on_scored: Callable[[Row, float, str], None] | None = None):
        self.outcome, self.on_scored = outcome, on_scored
        self.window: deque[Pending] = deque()
        self.waiting = FirstIn[Pending]()
        """tx_id → its copies in flight, oldest first (a repeated id is ingest's to refuse)."""

    def sent(self, row: Row) -> None:
        entry = Pending(row)
        self.window.append(entry)
        self.waiting.put(row.tx_id, entry)

    def handled(self, tx_id: str) -> bool:
        return tx_id not in self.waiting

    @property
    def unresolved(self) -> int:
        return self.outcome.sent_tx - self.outcome.done

    def resolve(self, tx_id: str, score: float = math.nan, version: str = "") -> None:
        if tx_id not in self.waiting:
            return  # a second copy of a score (at-least-once), or a transaction not of this replay
        entry = self.waiting.take(tx_id)
        entry.score, entry.version, entry.done = score, version, True
        self.outcome.done += 1
        while self.window and self.window[0].done:
            first = self.window.popleft()
            if first.version:
                self.outcome.scores.add(first.row, first.score, first.version)
                if self.on_scored:
                    self.on_scored(first.row, first.score, first.version)


class _Reader:
    """Scores and dead letters, from the ends of the topics as they were before sending."""

    def __init__(self, settings: Settings, ledger: Ledger, on_change: Callable[[Outcome], None] | None):
        self.settings, self.ledger, self.on_change = settings, ledger, on_change
        self.consumer = make_consumer(settings, SCORES, DEADLETTER, group=None, auto_offset_reset="latest")
        self.fetch_wait = FetchWait("replay", self.consumer, settings.fetch_max_wait_ms)
        self.scores_topic, self.dead_topic = settings.topic(SCORES), settings.topic(DEADLETTER)
        self.tx_topics = {settings.topic(t) for t in TX_TOPICS}
        self.changed = asyncio.Event()

    async def start(self) -> None:
        await self.consumer.start()
        await skip_to_end(self.consumer)  # before anything is sent: an older score of the same tx_id is not ours

    async def run(self) -> None:
        ledger, out = self.ledger, self.ledger.outcome
        while True:
            polled = await self.fetch_wait.poll(timeout_ms=200, max_records=20_000)
            for tp, batch in polled.items():
                if tp.topic == self.scores_topic:
                    for r in batch:
                        s = orjson.loads(r.value)  # scoring wrote it from the schema: no re-validation
                        ledger.resolve(s["tx_id"], s["score"], s["model_version"])
                    continue
                for r in batch:
                    letter = orjson.loads(r.value)
                    reason = letter["error"].split(":", 1)[0]
                    if letter["topic"] in self.tx_topics:
                        out.refused[reason] += 1
                        tx_id = _tx_id(letter["payload"])
                        if tx_id is not None:
                            ledger.resolve(tx_id)
                    else:
                        out.labels_refused[reason] += 1
            if polled:
                self.changed.set()
                if self.on_change:
                    self.on_change(out)

    async def wait(self, ready: Callable[[], bool], stalled_s: float) -> bool:
        """Until ``ready()``; False when nothing came back for ``stalled_s``."""
        while not ready():
            self.changed.clear()
            if not await wait_set(self.changed, stalled_s):
                return ready()
        return True


def _tx_id(payload_b64: str) -> str | None:
    """The tx_id of a dead-lettered raw, valid or enriched transaction."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(payload_b64))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if isinstance(value, dict) and isinstance(value.get("transaction"), dict):
        value = value["transaction"]  # an enriched transaction
    tx_id = value.get("tx_id") if isinstance(value, dict) else None
    return tx_id if isinstance(tx_id, str) else None


def transaction_json(row: Row, columns: Columns = DEFAULT_COLUMNS) -> bytes:
    """What a producer would have sent for ``row`` (read with ``Stream(more=MORE)``).

    >>> transaction_json(Row(1767225600.0, "t1", "c1", "m1", 3.0, "FR", "ecom", None, ("", "5411", "d1")))
    b'{"tx_id":"t1","ts":"2026-01-01T00:00:00+00:00","card_id":"c1","merchant_id":"m1","amount":3.0,"currency":"EUR","channel":"ecom","mcc":"5411","country":"FR","device_id":"d1"}'
    """
    currency, mcc, device = row.more or ("", "", "")
    body = {"tx_id": row.tx_id, "ts": datetime.fromtimestamp(row.ts, UTC).isoformat(), "card_id": row.card,
            "merchant_id": row.merchant, "amount": row.amount, "currency": currency or columns.default_currency,
            "channel": row.channel, "mcc": mcc or columns.default_mcc, "country": row.country}
    if device:
        body["device_id"] = device
    return orjson.dumps(body)


def label_json(labelled_at: float, tx_id: str, card: str, is_fraud: bool) -> bytes:
    """
    >>> label_json(1767225600.0, "t1", "c1", True)
    b'{"tx_id":"t1","card_id":"c1","is_fraud":true,"labelled_at":"2026-01-01T00:00:00+00:00","source":"chargeback"}'
    """
    return orjson.dumps({"tx_id": tx_id, "card_id": card, "is_fraud": is_fraud,
                         "labelled_at": datetime.fromtimestamp(labelled_at, UTC).isoformat(),
                         "source": "chargeback" if is_fraud else "analyst"})


@dataclass
class Part:
    """Events sent together, in event-time order."""

    records: list[Out] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    """Its transactions."""
    labels: list[str] = field(default_factory=list)
    """The tx_ids of its labels: each transaction was in an earlier part."""


def parts(events: Iterable[StreamEvent], tx_topic: str, label_topic: str, chunk: int,
          columns: Columns = DEFAULT_COLUMNS) -> Iterator[Part]:
    """The events as parts of at most ``chunk``, cut before a label whose transaction is in
    the part (the label has to wait for that transaction's score). Holds the card of each
    label not yet due (its key and body need it): as many as one label delay.

    >>> row = lambda tx, ts: Row(ts, tx, "c1", "m1", 1.0, "FR", "pos", True)
    >>> events = [("tx", row("t1", 0.0)), ("tx", row("t2", 1.0)), ("label", (5.0, "t1", True)),
    ...           ("tx", row("t3", 6.0)), ("label", (6.0, "t2", False)), ("label", (11.0, "t3", False))]
    >>> [([r.tx_id for r in p.rows], p.labels) for p in parts(events, "tx", "lb", chunk=2)]
    [(['t1', 't2'], []), (['t3'], ['t1']), ([], ['t2', 't3'])]
    """
    due_cards = FirstIn[str]()
    part, in_part = Part(), set[str]()
    for kind, item in events:
        if kind == "label" and item[1] in in_part or len(part.records) >= chunk:
            yield part
            part, in_part = Part(), set[str]()
        if kind == "tx":
            row: Row = item  # type: ignore[assignment]
            part.records.append(Out(tx_topic, row.card.encode(), transaction_json(row, columns)))
            part.rows.append(row)
            in_part.add(row.tx_id)
            if row.label is not None:
                due_cards.put(row.tx_id, row.card)
            continue
        labelled_at, tx_id, is_fraud = item  # type: ignore[misc]
        card = due_cards.take(tx_id)
        part.records.append(Out(label_topic, card.encode(), label_json(labelled_at, tx_id, card, is_fraud)))
        part.labels.append(tx_id)
    if part.records:
        yield part


async def replay(settings: Settings, events: Iterable[StreamEvent], *, columns: Columns = DEFAULT_COLUMNS,
                 max_in_flight: int = 20_000, chunk: int = 2_000, stalled_s: float = 60.0,
                 on_progress: Callable[[Outcome], None] | None = None,
                 on_scored: Callable[[Row, float, str], None] | None = None) -> Outcome:
    """Send every event (transactions read with ``Stream(more=MORE)``) and wait until each
    transaction is scored or refused; ``on_scored`` gets each scored one, in the order sent.

    Raises TimeoutError when the pipeline gives nothing back for ``stalled_s`` (a service is
    down or behind a stuck partition): the message says how far the replay got.
    """
    outcome, begun = Outcome(), time.monotonic()
    ledger = Ledger(outcome, on_scored)
    reader = _Reader(settings, ledger, on_progress)
    await reader.start()
    reading = asyncio.create_task(reader.run())
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    tx_topic, label_topic = settings.topic(TRANSACTIONS_RAW), settings.topic(LABELS_RAW)
    # What lags behind is kept while earlier transactions wait: bounded too.
    window_cap = 4 * max_in_flight

    async def wait(ready: Callable[[], bool], what: str) -> None:
        if not await reader.wait(ready, stalled_s):
            raise TimeoutError(f"nothing came back for {stalled_s:g}s while waiting for {what}: "
                               f"{outcome.sent_tx:,} transactions sent, {len(outcome.scores):,} scored, "
                               f"{sum(outcome.refused.values()):,} refused")

    sender = Sender(producer)
    sending: asyncio.Task | None = None

    async def send(part: Part) -> None:
        nonlocal sending
        if sending is not None:
            await sending  # one send at a time: the records of a partition stay in order
            sending = None
        await wait(lambda: ledger.unresolved < max_in_flight and len(ledger.window) < window_cap,
                   "the pipeline to catch up")
        if part.labels:
            await wait(lambda: all(ledger.handled(t) for t in part.labels), "the scores of labelled transactions")
        for row in part.rows:
            ledger.sent(row)
        outcome.sent_tx += len(part.rows)
        outcome.sent_labels += len(part.labels)
        sending = asyncio.create_task(sender.send(part.records))  # acked while the next part is read

    try:
        for part in parts(events, tx_topic, label_topic, chunk, columns):
            await send(part)
        if sending is not None:
            await sending
        await wait(lambda: not ledger.waiting, "the last scores")
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        await producer.stop()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await reader.consumer.stop()
    outcome.wall_s = time.monotonic() - begun
    return outcome
