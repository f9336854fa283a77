"""The replay's bookkeeping without a broker: events go in bounded parts in their order,
transactions leave the ledger in the order sent once scored or refused, each once, and the
scores file gets them as they leave."""

from __future__ import annotations

import csv

import pytest

from fraudstream.replay.commands import ScoresFile
from fraudstream.replay.run import Ledger, Outcome, parts
from fraudstream.replay.source import Row


def row(tx_id: str, ts: float, label: bool | None = False) -> Row:
    return Row(ts, tx_id, "c" + tx_id, "m1", 1.0, "FR", "pos", label)


def test_parts_are_bounded_even_where_the_file_ends_in_labels_and_keep_the_order():
    """The last label delay of a file is labels only: they once went as one part of them all."""
    events = [("tx", row(f"t{i}", float(i))) for i in range(10)]
    events += [("label", (100.0 + i, f"t{i}", i == 4)) for i in range(10)]
    cut = list(parts(events, "raw", "labels", chunk=3))
    assert [len(p.records) for p in cut] == [3, 3, 3, 3, 3, 3, 2]
    assert [r.key for p in cut for r in p.records] == [f"ct{i}".encode() for i in range(10)] * 2
    assert [t for p in cut for t in p.labels] == [f"t{i}" for i in range(10)]
    assert all(not {r.tx_id for r in p.rows} & set(p.labels) for p in cut)


def test_a_label_due_with_its_transaction_goes_in_the_next_part():
    events = [("tx", row("t1", 0.0)), ("label", (0.0, "t1", True)), ("tx", row("t2", 1.0))]
    cut = list(parts(events, "raw", "labels", chunk=100))
    assert [([r.tx_id for r in p.rows], p.labels) for p in cut] == [(["t1"], []), (["t2"], ["t1"])]
    assert cut[1].records[0].topic == "labels" and b'"is_fraud":true' in cut[1].records[0].value


def test_scores_leave_in_the_order_sent_each_once_refusals_left_out():
    out, left = Outcome(), []
    ledger = Ledger(out, on_scored=lambda r, score, version: left.append((r.tx_id, score, version)))
    for i, tx in enumerate(["t1", "t2", "t3", "t4"]):
        ledger.sent(row(tx, float(i)))
        out.sent_tx += 1
    ledger.resolve("t2", 0.2, "v1")  # scored before t1: waits behind it
    assert left == [] and not ledger.handled("t1") and ledger.handled("t2")
    ledger.resolve("t1", 0.1, "v1")
    ledger.resolve("t1", 0.9, "v2")  # a second copy of t1's score: at-least-once delivery
    ledger.resolve("t3")  # dead-lettered
    ledger.resolve("t4", 0.4, "untrained")
    assert left == [("t1", 0.1, "v1"), ("t2", 0.2, "v1"), ("t4", 0.4, "untrained")]
    assert (out.done, ledger.unresolved, len(ledger.window), len(out.scores)) == (4, 0, 0, 3)
    assert [(r.card, r.score, r.model_version) for r in out.scores.rows()] == [
        ("ct1", pytest.approx(0.1), "v1"), ("ct2", pytest.approx(0.2), "v1"), ("ct4", pytest.approx(0.4), "untrained")]


def test_a_repeated_tx_id_is_two_transactions_in_flight():
    out = Outcome()
    ledger = Ledger(out)
    ledger.sent(row("t1", 0.0))
    ledger.sent(row("t1", 1.0))
    out.sent_tx = 2
    ledger.resolve("t1", 0.5, "v1")  # the first copy scored
    assert not ledger.handled("t1") and ledger.unresolved == 1
    ledger.resolve("t1")  # the second refused by ingest as a duplicate
    assert ledger.handled("t1") and [r.time.timestamp() for r in out.scores.rows()] == [0.0]


def test_the_scores_file_has_every_row_in_order(tmp_path):
    path = tmp_path / "scores.csv"
    with ScoresFile(path, backlog=2) as put:  # a backlog smaller than the rows: the replay waits
        for i in range(5):
            put(row(f"t{i}", 60.0 * i, label=i == 3), 0.25, "v1")
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["tx_id", "time", "card", "merchant", "score", "model_version", "label"]
    assert [r[0] for r in rows[1:]] == ["t0", "t1", "t2", "t3", "t4"] and [r[6] for r in rows[1:]] == list("00010")


def test_a_scores_file_that_cannot_be_written_fails_the_replay_at_the_end(tmp_path):
    with pytest.raises(FileNotFoundError), ScoresFile(tmp_path / "missing" / "scores.csv", backlog=1) as put:
        for i in range(5):
            put(row(f"t{i}", float(i)), 0.5, "v1")  # never waits on the dead writer


def test_no_scores_file_asked_no_writer():
    with ScoresFile(None) as put:
        assert put is None
