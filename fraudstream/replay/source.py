"""Any historical CSV of transactions (with or without fraud labels) as the events a producer
would have sent, in event-time order. Pure: reads the file, does no other I/O.

Columns are found by name (``Columns``; the defaults are the simulator's CSV). Required:
time, card, merchant, amount. Optional: a missing tx id column numbers the rows
(``row-<line>``), a missing label column means no labels, and currency, channel, MCC,
country and device get the defaults in ``Columns``. Times are ISO 8601 with or without a
zone (naive = UTC; a space for the ``T`` is fine) or epoch seconds. Labels are 1/0,
true/false, yes/no (any case); empty means unknown.

A row that cannot even be placed in time (no parseable time) is still sent, first and as
it is, so that ingest dead-letters it with its reason like any bad input: nothing in the
file is silently dropped. Every other check (amount ≥ 0, ISO codes, ids) is ingest's.

Each labelled row yields a Label ``label_delay_s`` of event time after the transaction,
merged into the stream at that point: the learner sees it only then.

>>> import io
>>> text = "tx,when,card,shop,eur,fraud\\nt2,2026-01-01 10:00:05,c1,m1,12.5,1\\nt1,2026-01-01T10:00:00,c1,m2,3,false\\n"
>>> src = read(io.StringIO(text), Columns(tx_id="tx", time="when", merchant="shop", amount="eur", label="fraud",
...                                      card="card"), label_delay_s=60)
>>> [(e.kind, e.tx_id, e.at) for e in src.events]
[('tx', 't1', 1767261600.0), ('tx', 't2', 1767261605.0), ('label', 't1', 1767261660.0), ('label', 't2', 1767261665.0)]
>>> src.events[0].value
b'{"tx_id":"t1","ts":"2026-01-01T10:00:00+00:00","card_id":"c1","merchant_id":"m2","amount":3.0,"currency":"EUR","channel":"pos","mcc":"5999","country":"ZZ"}'
>>> src.transactions, src.labels, src.frauds, src.unplaced
(2, 2, 1, 0)
"""

from __future__ import annotations

import csv
import math
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, NamedTuple

import orjson

TRUE, FALSE = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


@dataclass(frozen=True)
class Columns:
    """Which column holds what; ``None`` for an optional one the file does not have."""

    time: str = "ts"
    card: str = "card_id"
    merchant: str = "merchant_id"
    amount: str = "amount"
    tx_id: str | None = "tx_id"
    label: str | None = "is_fraud"
    currency: str | None = "currency"
    channel: str | None = "channel"
    mcc: str | None = "mcc"
    country: str | None = "country"
    device: str | None = "device_id"
    default_currency: str = "EUR"
    default_channel: str = "pos"
    default_mcc: str = "5999"
    """Miscellaneous retail."""
    default_country: str = "ZZ"
    """ISO 3166's code for 'unknown'."""


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    """Event time, epoch seconds: when the producer would have sent it."""
    kind: Literal["tx", "label"]
    tx_id: str
    card_id: str
    value: bytes
    """The JSON a producer sends."""


@dataclass
class Source:
    events: list[Event] = field(default_factory=list)
    transactions: int = 0
    labels: int = 0
    frauds: int = 0
    unplaced: int = 0
    """Rows without a usable time: sent first, as they are, for ingest to dead-letter."""
    truth: dict[str, tuple[float, str, str, bool | None]] = field(default_factory=dict)
    """tx_id → (event time, card, merchant, label) of every placed row (for the scores file)."""


def parse_duration(text: str) -> float:
    """Seconds in ``7d``, ``12h``, ``1d12h``, ``90s``, ``0``.

    >>> parse_duration("7d"), parse_duration("1d12h"), parse_duration("0"), parse_duration("2.5m")
    (604800.0, 129600.0, 0.0, 150.0)
    """
    text = text.strip().lower()
    if text == "0":
        return 0.0
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m, 90s or 1d12h)")
    return sum(float(n) * UNIT_S[u] for n, u in parts)


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (naive = UTC) or of a number of epoch seconds.

    >>> parse_time("2026-01-01T01:00:00+01:00"), parse_time("2026-01-01 00:00:00"), parse_time("1767225600")
    (1767225600.0, 1767225600.0, 1767225600.0)
    """
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.strip())
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value):
        raise ValueError(f"not a time: {text!r}")
    return value


def parse_label(text: str) -> bool | None:
    """
    >>> parse_label("TRUE"), parse_label("0"), parse_label(" ")
    (True, False, None)
    """
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise ValueError(f"not a label: {text!r} (use 1/0, true/false or yes/no)")


def _index(header: list[str], columns: Columns, name: str, column: str | None, required: bool) -> int | None:
    if column is None:
        return None
    if column in header:
        return header.index(column)
    if required:
        raise ValueError(f"no {name} column {column!r} in the header ({', '.join(header)}); "
                         f"map it with --{name.replace('_', '-')}")
    return None


def _cell(row: list[str], index: int | None) -> str:
    """The stripped cell at index, or "" where the column is absent or the row short."""
    return row[index].strip() if index is not None and index < len(row) else ""


def read(file: IO[str] | str | Path, columns: Columns = Columns(), label_delay_s: float = 0.0) -> Source:
    """The file's events in event-time order (stable: a tie keeps file order; a label
    sorts after a transaction of the same instant)."""
    if isinstance(file, (str, Path)):
        with open(file, newline="", encoding="utf-8") as handle:
            return read(handle, columns, label_delay_s)
    reader = csv.reader(file)
    header = next(reader, None)
    if not header:
        raise ValueError("the file is empty: no header row")
    header = [h.strip() for h in header]
    at = {name: _index(header, columns, name, getattr(columns, name), name in ("time", "card", "merchant", "amount"))
          for name in ("time", "card", "merchant", "amount", "tx_id", "label", "currency", "channel", "mcc",
                       "country", "device")}
    src, unplaced, placed = Source(), [], []
    # defaults stand in for the optional columns the file lacks
    fixed = {"currency": columns.default_currency, "channel": columns.default_channel,
             "mcc": columns.default_mcc, "country": columns.default_country}
    optional = [(key, at[name]) for key, name in
                (("currency", "currency"), ("channel", "channel"), ("mcc", "mcc"), ("country", "country"))]
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        get = lambda name, row=row: _cell(row, at[name])
        tx_id = get("tx_id") or f"row-{line}"
        card, merchant = get("card"), get("merchant")
        try:
            ts = parse_time(get("time"))
            label = parse_label(get("label"))
        except ValueError:
            # ingest says why; the row keeps its raw cells
            unplaced.append(Event(-math.inf, "tx", tx_id, card, orjson.dumps(dict(zip(header, row)))))
            continue
        amount_text = get("amount")
        try:
            amount: float | str = float(amount_text)
        except ValueError:
            amount = amount_text  # ingest refuses it with the reason
        body = {"tx_id": tx_id, "ts": datetime.fromtimestamp(ts, UTC).isoformat(), "card_id": card,
                "merchant_id": merchant, "amount": amount}
        for key, index in optional:
            value = row[index].strip() if index is not None and index < len(row) else ""
            body[key] = value or fixed[key]
        device = get("device")
        if device:
            body["device_id"] = device
        placed.append(Event(ts, "tx", tx_id, card, orjson.dumps(body)))
        src.truth.setdefault(tx_id, (ts, card, merchant, label))  # a repeated id is ingest's to refuse
        src.transactions += 1
        if label is not None:
            labelled_at = datetime.fromtimestamp(ts + label_delay_s, UTC).isoformat()
            placed.append(Event(ts + label_delay_s, "label", tx_id, card, orjson.dumps(
                {"tx_id": tx_id, "card_id": card, "is_fraud": label, "labelled_at": labelled_at,
                 "source": "chargeback" if label else "analyst"})))
            src.labels += 1
            src.frauds += label
    placed.sort(key=lambda e: (e.at, e.kind == "label"))
    src.events = unplaced + placed
    src.transactions += len(unplaced)
    src.unplaced = len(unplaced)
    return src


class Row(NamedTuple):
    """One transaction of the file, as much of it as features and the report read."""

    ts: float
    tx_id: str
    card: str
    merchant: str
    amount: float
    country: str
    channel: str
    label: bool | None
    more: tuple[str, ...] = ()
    """The stripped cells of :attr:`Stream.more`'s columns ("" where absent): what a replay
    sends on and ``evaluate`` does not read."""


LabelDue = tuple[float, str, bool]
"""(labelled_at, tx_id, is_fraud): a label the stream releases at its time."""
StreamEvent = tuple[Literal["tx"], Row] | tuple[Literal["label"], LabelDue]


@dataclass
class Stream:
    """The file's transactions and delayed labels in event-time order, read as they are
    consumed: memory holds the reorder buffer and the labels not yet due, not the file.

    Rows must be in time order up to ``reorder`` rows of disorder; a row older than one
    already sent is refused ("late"), like every row ``evaluate`` cannot place or use (no
    time, no card or merchant, an amount that is not a finite number in [0, max_amount]).
    Iterating yields ``("tx", Row)`` and ``("label", (labelled_at, tx_id, is_fraud))``; a
    label sorts after a transaction of the same instant.

    >>> import io
    >>> text = "tx_id,ts,card_id,merchant_id,amount,is_fraud\\nt1,2026-01-01T10:00:00,c1,m1,0,1\\n" \\
    ...        "t2,2026-01-01T10:00:05,c1,m1,x,0\\nt3,2026-01-01T10:01:00,c2,m1,2.5,\\n"
    >>> s = Stream(io.StringIO(text), label_delay_s=60)
    >>> [(kind, item[1]) for kind, item in s]
    [('tx', 't1'), ('tx', 't3'), ('label', 't1')]
    >>> s.transactions, s.labels, dict(s.refused)
    (2, 1, {'malformed amount': 1})
    """

    file: IO[str]
    columns: Columns = Columns()
    label_delay_s: float = 0.0
    max_amount: float = math.inf
    reorder: int = 10_000
    more: tuple[str, ...] = ()
    """Further :class:`Columns` fields (e.g. ``currency``, ``mcc``, ``device``) carried on each Row."""
    transactions: int = 0
    labels: int = 0
    frauds: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def _rows(self):
        reader = csv.reader(self.file)
        header = next(reader, None)
        if not header:
            raise ValueError("the file is empty: no header row")
        header = [h.strip() for h in header]
        c = self.columns
        at = {name: _index(header, c, name, getattr(c, name), name in ("time", "card", "merchant", "amount"))
              for name in ("time", "card", "merchant", "amount", "tx_id", "label", "country", "channel")}
        i_time, i_card, i_merchant, i_amount = at["time"], at["card"], at["merchant"], at["amount"]
        i_tx, i_label, i_country, i_channel = at["tx_id"], at["label"], at["country"], at["channel"]
        width = max(i for i in at.values() if i is not None) + 1
        country, channel = c.default_country, c.default_channel
        i_more = [_index(header, c, name, getattr(c, name), False) for name in self.more]
        for line, row in enumerate(reader, start=2):
            if len(row) < width:
                if row:
                    self._refuse("too few columns")
                continue
            text = row[i_time]
            try:
                moment = datetime.fromisoformat(text)  # the common case first: exceptions cost
                ts = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
            except ValueError:
                try:
                    ts = parse_time(text)
                except ValueError:
                    self._refuse("malformed time")
                    continue
            try:
                amount = float(row[i_amount])
            except ValueError:
                self._refuse("malformed amount")
                continue
            if not 0.0 <= amount <= self.max_amount:  # NaN fails too
                self._refuse("amount out of range")
                continue
            card, merchant = row[i_card].strip(), row[i_merchant].strip()
            if not card or not merchant:
                self._refuse("no card or merchant")
                continue
            try:
                label = parse_label(row[i_label]) if i_label is not None else None
            except ValueError:
                self._refuse("malformed label")
                continue
            yield ts, line, Row(ts, row[i_tx].strip() if i_tx is not None else f"row-{line}", card, merchant,
                                  amount, (row[i_country].strip() or country) if i_country is not None else country,
                                  (row[i_channel].strip() or channel) if i_channel is not None else channel, label,
                                  tuple(_cell(row, i) for i in i_more) if i_more else ())

    def __iter__(self) -> Iterator[StreamEvent]:
        from heapq import heappop, heappush

        # The reorder buffer is a priority queue on (ts, line) split in two: ``run`` holds the
        # rows that came in order (ascending, so appended and popped at the ends), ``heap``
        # the others. Its minimum is the smaller of their heads: the same order as one heap
        # at a fraction of the cost, since most files are in order or nearly.
        run: deque[tuple[float, int, Row]] = deque()
        heap: list[tuple[float, int, Row]] = []
        # labels fall due in the order of their transactions (a fixed delay after an
        # ascending ts), so a queue; an equal labelled_at goes by line, as a heap would
        due: deque[tuple[float, int, str, bool]] = deque()
        last = -math.inf
        delay, reorder = self.label_delay_s, self.reorder
        rows = self._rows()
        while True:
            item = next(rows, None)
            if item is not None:
                if not run or run[-1] <= item:
                    run.append(item)
                else:
                    heappush(heap, item)
                if len(run) + len(heap) <= reorder:
                    continue
            if run and (not heap or run[0] < heap[0]):
                ts, line, row = run.popleft()
            elif heap:
                ts, line, row = heappop(heap)
            else:
                break
            if ts < last:
                self._refuse("late")
                continue
            last = ts
            while due and due[0][0] < ts:
                labelled_at, _, tx_id, is_fraud = due.popleft()
                yield "label", (labelled_at, tx_id, is_fraud)
            self.transactions += 1
            yield "tx", row
            if row.label is not None:
                self.labels += 1
                self.frauds += row.label
                label = (ts + delay, line, row.tx_id, row.label)
                if due and label < due[-1]:  # two times an ulp apart: keep the heap's order
                    due.insert(bisect_right(due, label), label)
                else:
                    due.append(label)
        while due:
            labelled_at, _, tx_id, is_fraud = due.popleft()
            yield "label", (labelled_at, tx_id, is_fraud)
