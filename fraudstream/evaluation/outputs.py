"""Where a report goes besides the terminal: a JSON file and the PNG plots."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from fraudstream.evaluation.report import Report, ScoredRow


def write_outputs(rows: Iterable[ScoredRow], report: Report, json_out: Path | None, plots: Path | None) -> list[Path]:
    """Write what was asked for; returns the files written."""
    written = []
    if json_out is not None:
        json_out.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
        written.append(json_out)
    if plots is not None:
        from fraudstream.evaluation.plots import write_plots  # matplotlib only when plotting

        written += write_plots(rows, report, plots)
    return written
