"""What the page shows, folded from observations: pure code, no Faust, no Kafka.

An observation is one consumed record reduced to a small JSON dict (``observe.py``) that
carries where it came from (``src``: ``topic:partition``, ``o``: offset) and the minute it
was produced in (``m``, epoch seconds). A :class:`Tally` counts each record exactly once:
it remembers the highest offset counted per source partition, so a batch replayed after a
rebalance or a crash (whole, or overlapping the last one) changes nothing.

State lives in named sections (plain JSON-able values) so that the service can keep each
one under its own key of a changelog-backed Faust table and write back only what changed.

A label whose score is known is joined at once; one that came first waits, and is joined
by the score's observation (kind ``joined``, counted under the score's offset).

>>> t = Tally(minutes_kept=2, feed_size=2)  # the oldest minute (60) is forgotten below
>>> rows = [{"k": "score", "src": "scores:0", "o": 0, "m": 60, "s": 0.95},
...         {"k": "label", "src": "labels:0", "o": 0, "m": 120, "fraud": True, "s": 0.95},
...         {"k": "label", "src": "labels:0", "o": 1, "m": 120, "fraud": False, "s": None},
...         {"k": "score", "src": "scores:0", "o": 1, "m": 180, "s": 0.1},
...         {"k": "joined", "src": "scores:0/joined", "o": 1, "m": 180, "fraud": False, "s": 0.1}]
>>> sorted(t.apply(rows, alert_threshold=0.8))
['minutes', 'offsets']
>>> t.apply(rows[:2], alert_threshold=0.8)  # a replay: already counted
set()
>>> [(m, v["scores"], v["labels"], v["tp"], v["tn"]) for m, v in t.sections["minutes"].items()]
[('120', 0, 2, 1, 0), ('180', 1, 0, 0, 1)]
>>> t.sections["minutes"]["180"]["hist"][1]
1
"""

from __future__ import annotations

import copy
from typing import Any

HIST_BINS = 10
COUNTS = ("scores", "alerts", "labels", "deadletters", "drift", "models", "tp", "fp", "fn", "tn")
OUTCOMES = ("tp", "fp", "fn", "tn")
FEEDS = {"alert": "alerts", "drift": "drift", "model": "models"}
"""Observation kind → the section holding the latest few of them, newest first."""

SECTIONS = ("offsets", "minutes", "reasons", "alerts", "drift", "models")


def empty_minute() -> dict[str, Any]:
    return {**{c: 0 for c in COUNTS}, "hist": [0] * HIST_BINS}


def score_bin(score: float) -> int:
    """The histogram bin of a score in [0, 1]; 1.0 falls in the last bin.

    >>> score_bin(0.0), score_bin(0.45), score_bin(1.0)
    (0, 4, 9)
    """
    return min(int(score * HIST_BINS), HIST_BINS - 1)


def outcome(score: float, is_fraud: bool, threshold: float) -> str:
    """Where a labelled transaction lands in the confusion matrix of the alerting rule.

    >>> outcome(0.9, True, 0.8), outcome(0.9, False, 0.8), outcome(0.1, True, 0.8)
    ('tp', 'fp', 'fn')
    """
    alerted = score >= threshold
    if is_fraud:
        return "tp" if alerted else "fn"
    return "fp" if alerted else "tn"


class Tally:
    def __init__(self, sections: dict[str, Any] | None = None, *, minutes_kept: int = 120, feed_size: int = 50):
        self.minutes_kept = minutes_kept
        self.feed_size = feed_size
        blank: dict[str, Any] = {"offsets": {}, "minutes": {}, "reasons": {}, "alerts": [], "drift": [], "models": []}
        # copies: the caller's dicts may be a table's live values, changed only by assignment
        self.sections = {name: copy.deepcopy((sections or {}).get(name) or blank[name]) for name in SECTIONS}

    def apply(self, rows: list[dict[str, Any]], alert_threshold: float) -> set[str]:
        """Count every row not counted before; return the names of the sections that changed."""
        offsets, minutes = self.sections["offsets"], self.sections["minutes"]
        changed: set[str] = set()
        for row in rows:
            if row["o"] <= offsets.get(row["src"], -1):
                continue
            offsets[row["src"]] = row["o"]
            changed |= {"offsets", "minutes"}
            minute = minutes.setdefault(str(row["m"]), empty_minute())
            kind = row["k"]
            if kind == "score":
                minute["scores"] += 1
                minute["hist"][score_bin(row["s"])] += 1
            elif kind == "label":
                minute["labels"] += 1
                if row["s"] is not None:
                    minute[outcome(row["s"], row["fraud"], alert_threshold)] += 1
            elif kind == "joined":
                minute[outcome(row["s"], row["fraud"], alert_threshold)] += 1
            elif kind == "deadletter":
                minute["deadletters"] += 1
                reasons = self.sections["reasons"]
                reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
                changed.add("reasons")
            else:
                minute[FEEDS[kind]] += 1
                feed = self.sections[FEEDS[kind]]
                feed.insert(0, row["event"])
                del feed[self.feed_size :]
                changed.add(FEEDS[kind])
        if "minutes" in changed:
            for old in sorted(minutes, key=int)[: -self.minutes_kept]:
                del minutes[old]
        return changed


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize(sections: dict[str, Any], recent_minutes: int = 5) -> dict[str, Any]:
    """The page's view of the sections: totals, a per-minute series and the feeds.

    >>> s = summarize({"minutes": {"60": empty_minute() | {"scores": 4, "alerts": 1, "tp": 1, "fn": 1}}})
    >>> s["totals"]["scores"], s["series"][0]["alert_rate"], s["precision"], s["recall"]
    (4, 0.25, 1.0, 0.5)
    """
    minutes = sections.get("minutes") or {}
    series, totals, hist = [], {c: 0 for c in COUNTS}, [0] * HIST_BINS
    ordered = sorted(minutes, key=int)
    for i, key in enumerate(ordered):
        m = minutes[key]
        for c in COUNTS:
            totals[c] += m[c]
        if i >= len(ordered) - recent_minutes:
            hist = [a + b for a, b in zip(hist, m["hist"])]
        series.append({"minute": int(key), "scores": m["scores"], "alerts": m["alerts"], "labels": m["labels"],
                       "deadletters": m["deadletters"], "alert_rate": ratio(m["alerts"], m["scores"]),
                       "precision": ratio(m["tp"], m["tp"] + m["fp"]), "recall": ratio(m["tp"], m["tp"] + m["fn"])})
    reasons = sorted((sections.get("reasons") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    totals["joined"] = sum(totals[o] for o in OUTCOMES)
    # labels whose score has not been seen: not yet, or never (scored before this dashboard remembers)
    totals["waiting"] = totals["labels"] - totals["joined"]
    return {
        "totals": totals,
        "series": series,
        "score_histogram": hist,
        "precision": ratio(totals["tp"], totals["tp"] + totals["fp"]),
        "recall": ratio(totals["tp"], totals["tp"] + totals["fn"]),
        "deadletter_reasons": [{"reason": r, "count": n} for r, n in reasons],
        "alerts": sections.get("alerts") or [],
        "drift": sections.get("drift") or [],
        "models": sections.get("models") or [],
    }
