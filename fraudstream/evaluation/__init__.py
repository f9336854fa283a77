"""Offline evaluation of scores: the scores file, the report and its plots.

``report`` defines the scores file (:data:`SCORE_COLUMNS`, one row per scored transaction,
written by ``fraudstream replay --scores-out``) and computes the report over a period;
``plots`` draws it (matplotlib, imported only there).
"""

from fraudstream.evaluation.report import (
    SCORE_COLUMNS,
    Day,
    Report,
    ScoredRow,
    build_report,
    card_precision_at_k,
    in_period,
    read_scores,
    threshold_at_alert_rate,
    write_scores,
)

__all__ = [
    "SCORE_COLUMNS",
    "Day",
    "Report",
    "ScoredRow",
    "build_report",
    "card_precision_at_k",
    "in_period",
    "read_scores",
    "threshold_at_alert_rate",
    "write_scores",
]
