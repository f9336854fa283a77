"""Dev: measure the services (bench) and keep the exported event schemas current."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import Settings

PANEL = "Develop"


def register(app: typer.Typer) -> None:
    for command in (bench, schemas):
        app.command(rich_help_panel=PANEL)(command)
    app.command("soak", rich_help_panel=PANEL)(soak)


def soak(
    minutes: Annotated[float, typer.Option(help="how long to run steady load")] = 60.0,
    rate: Annotated[float, typer.Option(help="simulated transactions per second")] = 200.0,
    every: Annotated[float, typer.Option(help="seconds between memory samples")] = 5.0,
    max_growth: Annotated[float, typer.Option(help="MiB per hour over the second half that fails the run")] = 50.0,
    png: Annotated[Path, typer.Option(help="where to draw the curves (the samples go beside it as JSON)")] = Path(
        "docs/img/soak.png"),
) -> None:
    """Steady load on the local stack for a while; fail if any process's memory grows without bound."""
    from fraudstream.faults.soak import soak_command

    soak_command(minutes=minutes, rate=rate, every=every, max_growth=max_growth, png=png)


def bench(
    stage: Annotated[str, typer.Argument(
        help="full (every service, labels flowing, and the baselines), ingest, features, pipeline "
             "or scoring")] = "full",
    events: Annotated[int | None, typer.Option(
        help="backlog size for the throughput run [default: 100,000 for ingest, else 30,000]")] = None,
    offered: Annotated[float | None, typer.Option(
        help="offered load for the latency run, transactions/s [default: half the throughput just measured]")] = None,
    latency_seconds: Annotated[float, typer.Option(help="length of the latency run")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as one JSON object")] = False,
) -> None:
    """Measure a stage's throughput (draining a backlog) and latency at a fixed load, on the local stack."""
    import dataclasses
    import json

    from fraudstream.bench import DEFAULT_EVENTS, STAGES, run_bench
    from fraudstream.processes import sigterm_as_interrupt
    from fraudstream.stack import LocalStack

    if stage not in STAGES:
        raise typer.BadParameter(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    base = Settings(session_timeout_ms=3000, heartbeat_interval_ms=500, log_level="WARNING")
    with sigterm_as_interrupt(), LocalStack(base) as stack:  # SIGTERM stops the services and the stack too
        figures = asyncio.run(run_bench(stack.settings, stack.env(), stack.workdir, stage,
                                        events or DEFAULT_EVENTS[stage], offered, latency_seconds))
    typer.echo(json.dumps(dataclasses.asdict(figures)) if as_json else "\n".join(figures.lines()))


def schemas(
    out: Annotated[Path | None, typer.Option(help="directory (default: the repo's schemas/)")] = None,
    check: Annotated[bool, typer.Option(help="only check the committed files are current")] = False,
) -> None:
    """Export the JSON Schema of every event (or check the exported files are current)."""
    from fraudstream import schemas as schema_files

    if check:
        stale = schema_files.drift(*(p for p in [out] if p))
        if stale:
            typer.echo(f"stale schemas: {', '.join(stale)}", err=True)
            raise typer.Exit(1)
        typer.echo("schemas are current")
        return
    for path in schema_files.write(*(p for p in [out] if p)):
        typer.echo(f"wrote {path}")
