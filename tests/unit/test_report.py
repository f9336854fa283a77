"""The evaluation report on a hand-built scores file: every expected number is worked out here."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from fraudstream.evaluation import (
    SCORE_COLUMNS,
    ScoredRow,
    build_report,
    card_precision_at_k,
    read_scores,
    threshold_at_alert_rate,
    write_scores,
)
from fraudstream.evaluation.plots import write_plots


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


F, G, U = True, False, None  # fraud, genuine, unknown

# Three UTC days. With k=2:
# day 1: cards A .90 (fraud), B .80, C .70 (fraud), D .10 -> top 2 = A, B -> 1/2; A is now detected.
# day 2: A .95 (fraud) is left out; C .85 (fraud), B .81, E .60, D .50 -> top 2 = C, B -> 1/2;
#        C is now detected too. (Without the exclusion the top 2 would be A, C: 2/2.)
# day 3: C .99 (fraud) is left out; G .97 is unlabelled, so ignored; F .45 (fraud), H .42 (fraud),
#        B .40 -> top 2 = F, H -> 2/2.
# mean card precision@2 = (1/2 + 1/2 + 1) / 3 = 2/3
ROWS = [
    ScoredRow("t1", at(1, 9), "A", "m1", 0.90, "v1", F),
    ScoredRow("t2", at(1, 10), "A", "m2", 0.30, "v1", G),
    ScoredRow("t3", at(1, 11), "B", "m1", 0.80, "v1", G),
    ScoredRow("t4", at(1, 12), "C", "m3", 0.70, "v1", F),
    ScoredRow("t5", at(1, 23, 59), "D", "m2", 0.10, "v1", G),
    ScoredRow("t6", at(2, 0), "A", "m1", 0.95, "v1", F),  # exactly midnight: day 2
    ScoredRow("t7", at(2, 8), "C", "m3", 0.85, "v1", F),
    ScoredRow("t8", at(2, 9), "B", "m1", 0.81, "v1", G),
    ScoredRow("t9", at(2, 10), "E", "m2", 0.60, "v1", G),
    ScoredRow("t10", at(2, 11), "D", "m2", 0.50, "v1", G),
    ScoredRow("t11", at(3, 0), "C", "m3", 0.99, "v2", F),
    ScoredRow("t12", at(3, 1), "B", "m1", 0.40, "v2", G),
    ScoredRow("t13", at(3, 2), "F", "m4", 0.45, "v2", F),
    ScoredRow("t14", at(3, 3), "G", "m4", 0.97, "v2", U),
    ScoredRow("t15", at(3, 4), "H", "m4", 0.42, "v2", F),
]


def test_card_precision_leaves_out_cards_detected_on_earlier_days():
    assert card_precision_at_k(ROWS, k=2) == {date(2024, 3, 1): 0.5, date(2024, 3, 2): 0.5, date(2024, 3, 3): 1.0}
    # k=1: day 1 A (fraud) 1/1; day 2 without A: C (fraud) 1/1; day 3 without A, C: F (fraud) 1/1
    assert list(card_precision_at_k(ROWS, k=1).values()) == [1.0, 1.0, 1.0]
    # k=10 divides by 10 even when fewer cards are left (the handbook's definition):
    # day 1: A, C fraud -> 2/10; day 2: A, C detected, E, D, B genuine -> 0/10; day 3: F, H -> 2/10
    assert list(card_precision_at_k(ROWS, k=10).values()) == [0.2, 0.0, 0.2]


def test_report_over_the_whole_file():
    report = build_report(ROWS, k=2, alert_rate=0.2, threshold=0.8)
    assert (report.transactions, report.labelled, report.frauds) == (15, 14, 7)
    assert report.model_versions == ("v1", "v2")
    assert [d.day for d in report.days] == [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)]
    assert [d.card_precision for d in report.days] == [0.5, 0.5, 1.0]
    assert report.card_precision_mean == pytest.approx(2 / 3)
    # labelled, riskiest first: .99F .95F .90F .85F .81G .80G .70F .60G .50G .45F .42F .40G .30G .10G
    # AP = mean precision at each fraud = (1 + 1 + 1 + 1 + 5/7 + 6/10 + 7/11) / 7
    assert report.average_precision == pytest.approx((4 + 5 / 7 + 6 / 10 + 7 / 11) / 7)
    # AUC = genuine ones below each fraud / (7 × 7) = (7 + 7 + 7 + 7 + 5 + 3 + 3) / 49
    assert report.roc_auc == pytest.approx(39 / 49)
    assert report.undefined == {}


def test_recall_at_alert_rate_counts_every_transaction_for_the_threshold():
    report = build_report(ROWS, k=2, alert_rate=0.2)
    # 20 % of 15 transactions = 3; the three riskiest: .99, .97 (unlabelled t14), .95 -> threshold .95.
    # (Over the 14 labelled rows alone it would be ⌈2.8⌉ = 3 -> .90, and recall 3/7.)
    assert report.alert_rate_threshold == 0.95
    assert report.alerted_share == pytest.approx(3 / 15)
    # frauds at or above .95: t11, t6 -> 2 of 7; labelled alerts t11, t6 are both fraud -> precision 1
    assert report.recall_at_alert_rate == pytest.approx(2 / 7)
    assert report.precision_at_alert_rate == 1.0


def test_threshold_at_alert_rate_does_not_round_up_float_noise():
    scores = [i / 100 for i in range(100)]
    assert threshold_at_alert_rate(scores, 0.07) == 0.93  # 0.07 * 100 is 7.000000000000001: still 7 alerts
    assert threshold_at_alert_rate(scores, 0.001) == 0.99  # at least one alert
    with pytest.raises(ValueError, match="alert rate"):
        threshold_at_alert_rate(scores, 0.0)


def test_alerts_per_day_include_unlabelled_transactions():
    report = build_report(ROWS, threshold=0.8)
    # >= .8 inclusive: day 1 t1 .90, t3 .80; day 2 t6, t7, t8 (.81); day 3 t11, t14 (unlabelled .97)
    assert [d.alerts for d in report.days] == [2, 3, 2]
    assert report.alerts_per_day_mean == pytest.approx(7 / 3)
    assert [(d.transactions, d.labelled, d.frauds) for d in report.days] == [(5, 5, 2), (5, 5, 2), (5, 4, 3)]


def test_period_is_inclusive_start_exclusive_end_and_starts_detection_afresh():
    report = build_report(ROWS, start=at(2, 0), end=at(3, 0), k=2)
    # t6 at 2024-03-02T00:00 is in, t11 at 2024-03-03T00:00 is out: day 2 only
    assert (report.transactions, report.frauds, len(report.days)) == (5, 2, 1)
    # A was detected on day 1, outside the period, so it counts again: top 2 = A, C -> 2/2
    assert report.card_precision_mean == 1.0
    # a naive bound is taken as UTC
    assert build_report(ROWS, start=datetime(2024, 3, 2), end=datetime(2024, 3, 3)).transactions == 5


def test_unlabelled_rows_change_no_label_metric():
    labelled_only = build_report([r for r in ROWS if r.label is not None], k=2, alert_rate=0.2)
    noisy = ROWS + [ScoredRow(f"u{i}", at(1 + i % 3, 5), f"Z{i}", "m9", 1.0, "v1", None) for i in range(6)]
    report = build_report(noisy, k=2, alert_rate=0.2)
    assert report.labelled == labelled_only.labelled == 14 and report.transactions == 21
    for name in ("average_precision", "roc_auc", "card_precision_mean"):
        assert getattr(report, name) == getattr(labelled_only, name)


def test_a_period_without_fraud_leaves_ap_and_auc_undefined_with_a_reason():
    genuine = [r for r in ROWS if r.label is not True and r.time.day == 2]
    report = build_report(genuine, k=2)
    assert len(report.days) == 1 and report.frauds == 0
    assert report.average_precision is None and report.roc_auc is None and report.recall_at_alert_rate is None
    assert report.undefined["average_precision"] == "no fraud labelled in the period"
    assert report.days[0].card_precision == 0.0 and report.days[0].average_precision is None
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["average_precision"] is None and as_json["days"][0]["day"] == "2024-03-02"
    assert "undefined: no fraud labelled in the period" in report.table()


def test_an_empty_period_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no scored transactions in \[2025-01-01T00:00:00\+00:00, the end\)"):
        build_report(ROWS, start=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="no scored transactions at all"):
        build_report([])


def test_as_dict_and_table():
    report = build_report(ROWS, k=2, alert_rate=0.2)
    d = json.loads(json.dumps(report.as_dict()))
    assert d["counts"] == {"transactions": 15, "labelled": 14, "frauds": 7, "days": 3, "models": 2}
    assert d["period"]["first"] == "2024-03-01T09:00:00+00:00" and d["period"]["start"] is None
    assert d["at_alert_rate"]["threshold"] == 0.95 and d["card_precision_at_k"]["k"] == 2
    lines = report.table().splitlines()
    # day 1 AP: .90F .80G .70F .30G .10G -> (1 + 2/3) / 2; days 2 and 3 rank every fraud first
    assert lines[-3:] == [
        "2024-03-01               5         5       2       2       0.500   0.833",
        "2024-03-02               5         5       2       3       0.500   1.000",
        "2024-03-03               5         4       3       2       1.000   1.000",
    ]
    assert len({len(line) for line in lines[-4:]}) == 1  # the day table's columns line up


def test_scores_file_round_trip(tmp_path):
    path = tmp_path / "scores.csv"
    assert write_scores(iter(ROWS), path) == 15
    header = "tx_id,time,card,merchant,score,model_version,label"
    assert path.read_text().splitlines()[0] == ",".join(SCORE_COLUMNS) == header
    assert path.read_text().splitlines()[1] == "t1,2024-03-01T09:00:00+00:00,A,m1,0.9,v1,1"
    assert read_scores(path) == ROWS


def test_read_scores_converts_to_utc_and_names_a_bad_line(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("tx_id,time,card,merchant,score,model_version,label\n"
                    "t1,2024-03-02T01:30:00+02:00,A,m1,0.25,v1,\n"
                    "t2,2024-03-02T01:30:00,A,m1,0.25,v1,0\n")
    with pytest.raises(ValueError, match=r"scores.csv:3: time .* has no zone"):
        read_scores(path)
    path.write_text(path.read_text().splitlines()[0] + "\nt1,2024-03-02T01:30:00Z,A,m1,1.5,v1,\n")
    with pytest.raises(ValueError, match=r"scores.csv:2: score 1.5 is not in \[0, 1\]"):
        read_scores(path)
    path.write_text("tx_id,time,card,merchant,score,model_version,label\n"
                    "t1,2024-03-02T01:30:00+02:00,A,m1,0.25,v1,\n")
    (row,) = read_scores(path)
    assert row.time == datetime(2024, 3, 1, 23, 30, tzinfo=UTC) and row.label is None


def test_write_plots_writes_two_pngs(tmp_path):
    report = build_report(ROWS, k=2)
    paths = write_plots(ROWS, report, tmp_path / "plots")
    assert [p.name for p in paths] == ["precision_recall.png", "metrics_over_time.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_write_plots_without_fraud_on_a_single_day(tmp_path):
    genuine = [r for r in ROWS if r.label is False and r.time.day == 2]
    paths = write_plots(genuine, build_report(genuine), tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
