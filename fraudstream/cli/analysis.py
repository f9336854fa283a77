"""Data and analysis: replay history through the pipeline, evaluate a model, report on scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fraudstream.replay.commands import evaluate, replay

PANEL = "Data and analysis"


def register(app: typer.Typer) -> None:
    app.command("replay", rich_help_panel=PANEL)(replay)
    app.command("evaluate", rich_help_panel=PANEL)(evaluate)
    app.command(rich_help_panel=PANEL)(report)


def report(
    scores_csv: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                               help="a scores file, as `fraudstream replay --scores-out` writes")],
    start: Annotated[str | None, typer.Option(help="ISO time, inclusive (UTC unless it has a zone)")] = None,
    end: Annotated[str | None, typer.Option(help="ISO time, exclusive")] = None,
    k: Annotated[int, typer.Option(help="cards checked per day, for card precision@k")] = 100,
    alert_rate: Annotated[float, typer.Option(help="share of transactions alerted, for recall at that rate")] = 0.01,
    threshold: Annotated[float, typer.Option(help="alert threshold, for alerts per day")] = 0.8,
    json_out: Annotated[Path | None, typer.Option(help="also write the report as JSON to this file")] = None,
    plots: Annotated[Path | None, typer.Option(help="also write the report's PNGs into this directory")] = None,
) -> None:
    """Evaluate a scores file: ROC AUC, AP, card precision@k per day, recall at an alert rate, alerts/day."""
    from datetime import datetime

    from fraudstream.evaluation import build_report, read_scores
    from fraudstream.evaluation.outputs import write_outputs

    try:
        since, until = (None if t is None else datetime.fromisoformat(t) for t in (start, end))
    except ValueError as exc:
        raise typer.BadParameter(f"--start/--end: {exc}") from exc
    try:
        rows = read_scores(scores_csv)
        result = build_report(rows, since, until, k=k, alert_rate=alert_rate, threshold=threshold)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(result.table())
    for path in write_outputs(rows, result, json_out, plots):
        typer.echo(f"wrote {path}")
