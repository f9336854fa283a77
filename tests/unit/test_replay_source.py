"""The replay's CSV reader: column mapping, defaults, event-time order, labels delayed, and
rows it cannot place sent first for ingest to refuse."""

from __future__ import annotations

import io

import orjson
import pytest

from fraudstream.replay.source import Columns, parse_duration, read
from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction
from shared.events import utcnow

KAGGLE = Columns(time="trans_date_trans_time", card="cc_num", merchant="merchant", amount="amt",
                 tx_id="trans_num", label="is_fraud", currency=None, channel=None, mcc=None, country=None, device=None)
LIMITS = Limits(max_bytes=65536, max_amount=1e6, max_future_skew_s=1e12, max_age_days=1e6)


def test_a_foreign_file_maps_its_columns_and_fills_the_missing_ones():
    text = ("trans_date_trans_time,cc_num,merchant,category,amt,trans_num,is_fraud\n"
            "2019-01-01 00:00:51,4613314721966,fraud_Lind-Buckridge,entertainment,220.11,b2,0\n"
            "2019-01-01 00:00:18,2703186189652095,fraud_Rippin,misc_net,4.97,a1,1\n")
    src = read(io.StringIO(text), KAGGLE, label_delay_s=3600)
    assert [(e.kind, e.tx_id) for e in src.events] == [("tx", "a1"), ("tx", "b2"), ("label", "a1"), ("label", "b2")]
    tx = parse_transaction(src.events[0].value, LIMITS, utcnow())
    assert (tx.card_id, tx.merchant_id, tx.amount, tx.currency, tx.channel, tx.mcc, tx.country, tx.device_id) == (
        "2703186189652095", "fraud_Rippin", 4.97, "EUR", "pos", "5999", "ZZ", None)
    assert tx.ts.isoformat() == "2019-01-01T00:00:18+00:00"  # naive is UTC
    label = parse_label(src.events[2].value, LIMITS, utcnow())
    assert label.is_fraud and label.labelled_at.isoformat() == "2019-01-01T01:00:18+00:00"
    assert (src.transactions, src.labels, src.frauds, src.unplaced) == (2, 2, 1, 0)
    assert src.truth["a1"] == (1546300818.0, "2703186189652095", "fraud_Rippin", True)


def test_rows_without_ids_are_numbered_and_zones_and_epoch_seconds_are_read():
    text = "ts,card_id,merchant_id,amount\n1546300800,c1,m1,10\n2019-01-01T02:00:00+02:00,c1,m1,12\n"
    src = read(io.StringIO(text), Columns(tx_id=None, label=None))
    assert [(e.tx_id, e.at) for e in src.events] == [("row-2", 1546300800.0), ("row-3", 1546300800.0)]
    assert src.labels == 0


def test_unplaceable_rows_go_first_for_ingest_to_refuse_and_bad_values_are_left_to_ingest():
    text = ("tx_id,ts,card_id,merchant_id,amount,is_fraud\n"
            "t1,2026-01-01T00:00:00Z,c1,m1,ten,0\n"
            "t2,yesterday,c1,m1,10,0\n"
            "t3,2026-01-01T00:00:01Z,c1,m1,10,maybe\n"
            "t4,2026-01-01T00:00:02Z,c1,m1,-5,\n"
            "t4,2026-01-01T00:00:03Z,c1,m1,5,\n")
    src = read(io.StringIO(text))
    assert [(e.tx_id, e.kind) for e in src.events] == [("t2", "tx"), ("t3", "tx"), ("t1", "tx"), ("t1", "label"),
                                                       ("t4", "tx"), ("t4", "tx")]
    assert (src.transactions, src.unplaced, src.labels) == (5, 2, 1)
    assert orjson.loads(src.events[0].value) == {"tx_id": "t2", "ts": "yesterday", "card_id": "c1",
                                                 "merchant_id": "m1", "amount": "10", "is_fraud": "0"}
    for event in (src.events[0], src.events[1], src.events[2], src.events[4]):  # ingest says why
        with pytest.raises(Rejected, match="malformed"):
            parse_transaction(event.value, LIMITS, utcnow())


def test_a_missing_required_column_is_named_with_its_option():
    with pytest.raises(ValueError, match="no card column 'card_id'.*--card"):
        read(io.StringIO("ts,merchant_id,amount\n"))


@pytest.mark.parametrize("text", ["7", "7x", "d7", "1d 2h", ""])
def test_durations_that_are_not(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_stream_reorders_a_little_and_refuses_what_comes_too_late():
    from fraudstream.replay.source import Stream

    text = ("tx_id,ts,card_id,merchant_id,amount,is_fraud\n"
            "t2,2026-01-01T10:00:02,c1,m1,5,0\nt1,2026-01-01T10:00:01,c1,m1,5,0\n"
            "t3,2026-01-01T10:00:03,c1,m1,5,1\nt0,2026-01-01T10:00:00,c1,m1,5,0\n")
    stream = Stream(io.StringIO(text), label_delay_s=0, reorder=2)
    order = [(kind, item[1]) for kind, item in stream]
    assert order == [("tx", "t1"), ("label", "t1"), ("tx", "t2"), ("label", "t2"), ("tx", "t3"), ("label", "t3")]
    assert stream.refused == {"late": 1} and (stream.transactions, stream.labels, stream.frauds) == (3, 3, 1)


def test_the_stream_orders_as_one_priority_queue_would():
    """The reorder buffer (rows in order on a queue, the others on a heap) emits what a
    single heap of ``reorder`` rows would: rows displaced by less than that in order, the
    rest refused as late; labels after their delay, ties in file order."""
    import heapq
    import random

    from fraudstream.replay.source import Stream

    rng = random.Random(3)
    times = sorted(rng.randrange(0, 400) for _ in range(600))  # many equal times
    rows = [(f"t{i}", t) for i, t in enumerate(times)]
    for i in range(len(rows) - 1):  # local disorder, and now and then a row far out of place
        if rng.random() < 0.3:
            j = min(len(rows) - 1, i + rng.choice((1, 2, 5, 40)))
            rows[i], rows[j] = rows[j], rows[i]
    text = "tx_id,ts,card_id,merchant_id,amount,is_fraud\n" + "".join(
        f"{tx},{1767225600 + t},c{i % 7},m1,5,{i % 3 == 0:d}\n" for i, (tx, t) in enumerate(rows))

    def one_heap(reorder: int, delay: float) -> list[tuple[str, str]]:
        buffer: list = []
        due: list = []
        out, last = [], -1.0
        pending = [(1767225600.0 + t, line, tx, i % 3 == 0) for line, (i, (tx, t)) in enumerate(enumerate(rows), 2)]
        for k in range(len(pending) + reorder):
            if k < len(pending):
                heapq.heappush(buffer, pending[k])
                if len(buffer) <= reorder:
                    continue
            if not buffer:
                break
            ts, line, tx, fraud = heapq.heappop(buffer)
            if ts < last:
                continue
            last = ts
            while due and due[0][0] < ts:
                out.append(("label", heapq.heappop(due)[2]))
            out.append(("tx", tx))
            heapq.heappush(due, (ts + delay, line, tx))
        return out + [("label", heapq.heappop(due)[2]) for _ in range(len(due))]

    for reorder in (1, 8, 100):
        stream = Stream(io.StringIO(text), label_delay_s=30, reorder=reorder)
        got = [(kind, item[1]) for kind, item in stream]
        want = one_heap(reorder, 30.0)
        assert got == want, reorder
        assert stream.refused.get("late", 0) == len(rows) - sum(kind == "tx" for kind, _ in want)
