"""The side-by-side table's figures per test week, with exact values."""

from __future__ import annotations

import numpy as np

from fraudstream.evaluation.weekly import DAY_S, figures, table


def test_each_test_week_has_its_own_auc_ap_and_card_precision():
    # two weeks, one transaction a day on cards 0..13; a fraud on day 1 (week 1) and day 8 (week 2)
    days = np.arange(14)
    ts = days * DAY_S + 3600.0
    card = days.astype(np.int64)
    labels = np.zeros(14, dtype=np.int64)
    labels[[1, 8]] = 1
    scores = np.full(14, 0.1)
    scores[1] = 0.9  # week 1: the fraud ranks first
    scores[8] = 0.05  # week 2: the fraud ranks last
    f = figures(ts, card, labels, scores, start=0.0, end=14 * DAY_S, k=1)
    assert f.auc_by_week == (1.0, 0.0)
    assert f.ap_by_week == (1.0, 1 / 7)  # week 2: the fraud is reached at rank 7
    # card precision@1 per day: each day has one card, so its fraud is that day's top card
    # whatever its score (1 on days 1 and 8, 0 on the others)
    assert f.card_p_by_week == (1 / 7, 1 / 7)
    text = table({"m": f})
    assert text.splitlines()[-1] == f"{'m':<22}{'1.000 / 1.000 / 0.143':>24}{'0.000 / 0.143 / 0.143':>24}"
