"""The report's two pictures, as PNG files: the precision-recall curve and the metrics per day.

matplotlib is imported inside :func:`write_plots`, and drawn through the Agg canvas with no
pyplot, so importing this module costs nothing and no global figure state is touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fraudstream.evaluation.report import Report, ScoredRow, in_period


def precision_recall_points(pairs: Iterable[tuple[float, bool]]) -> list[tuple[float, float]]:
    """(recall, precision) at each distinct score that catches more fraud, riskiest first. Tied
    scores are one threshold, and the step through these points has area AP exactly.

    >>> precision_recall_points([(0.9, True), (0.8, False), (0.8, True), (0.5, False), (0.1, True)])
    [(0.3333333333333333, 1.0), (0.6666666666666666, 0.6666666666666666), (1.0, 0.6)]
    """
    ordered = sorted(pairs, key=lambda p: p[0], reverse=True)
    positives = sum(y for _, y in ordered)
    points: list[tuple[float, float]] = []
    tp, fp = 0, 0
    for i, (score, y) in enumerate(ordered):
        tp, fp = tp + y, fp + (not y)
        end_of_tie = i + 1 == len(ordered) or ordered[i + 1][0] != score
        if end_of_tie and tp and (not points or tp / positives > points[-1][0]):
            points.append((tp / positives, tp / (tp + fp)))
    return points


def write_plots(rows: Iterable[ScoredRow], report: Report, outdir: str | Path) -> list[Path]:
    """Write ``precision_recall.png`` and ``metrics_over_time.png`` into ``outdir`` (created if
    missing) for the report's period; returns their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.figure import Figure

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    labelled = [(r.score, r.label) for r in in_period(rows, report.start, report.end) if r.label is not None]

    pr = Figure(figsize=(6, 5), layout="constrained")
    ax = pr.add_subplot()
    points = precision_recall_points(labelled)
    if points:
        ap = report.average_precision
        ax.step([0.0] + [r for r, _ in points], [points[0][1]] + [p for _, p in points], where="pre",
                label=f"AP = {ap:.3f}" if ap is not None else "AP undefined")
        ax.axhline(report.frauds / report.labelled, color="grey", linestyle=":", label="no skill (fraud share)")
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, report.undefined.get("average_precision", "no fraud labelled"), ha="center")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"Precision-recall, {report.labelled:,} labelled transactions ({report.frauds:,} fraud)")

    over_time = Figure(figsize=(8, 6), layout="constrained")
    top, bottom = over_time.subplots(2, 1, sharex=True)
    days = [d.day for d in report.days]
    for name, values in ((f"card precision@{report.k}", [d.card_precision for d in report.days]),
                         ("average precision", [d.average_precision for d in report.days])):
        top.plot(days, [float("nan") if v is None else v for v in values], marker="o", label=name)
    top.set(ylim=(0, 1.02), ylabel="per day", title="Detection per UTC day")
    top.legend(loc="lower left")
    bottom.bar(days, [d.alerts for d in report.days], color="tab:red", width=0.8)
    bottom.axhline(report.alerts_per_day_mean, color="black", linestyle=":",
                   label=f"mean {report.alerts_per_day_mean:,.1f}")
    bottom.set(ylabel=f"alerts (score >= {report.threshold:g})", xlabel="day (UTC)")
    bottom.legend(loc="upper left")
    span = (days[-1] - days[0]).days + 1
    bottom.xaxis.set_major_locator(DayLocator(interval=max(1, span // 10)))
    bottom.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    over_time.autofmt_xdate()

    paths = [outdir / "precision_recall.png", outdir / "metrics_over_time.png"]
    for figure, path in zip((pr, over_time), paths):
        FigureCanvasAgg(figure).print_png(path)
    return paths
