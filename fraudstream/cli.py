"""``fraudstream``: run the demo, a service, the simulator, and read what flows.

Thin on purpose: each command parses options, builds Settings from the environment and
calls into the services.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from services import SERVICES
from services.__main__ import main as run_service_main
from shared.lifecycle import configure_logging, run_until_signal
from shared.settings import Settings
from shared.topics import TOPICS

app = typer.Typer(help="Real-time card-fraud detection on Kafka and Redis.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

@app.command()
def service(name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]) -> None:
    """Run one service (what a container runs)."""
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    raise typer.Exit(run_service_main([name]))


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(TOPICS)}")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", "-b")] = False,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many records")] = None,
) -> None:
    """Follow a topic and print each event as one readable line."""
    if topic not in TOPICS:
        raise typer.BadParameter(f"unknown topic {topic!r}; choose from {', '.join(TOPICS)}")
    from fraudstream.console import tail as follow

    run_until_signal(lambda stop: _until(stop, follow(Settings(), topic, from_beginning, limit)))


async def _until(stop: asyncio.Event, coro) -> None:
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, waiter):
        t.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)


@app.command()
def stack(
    kafka_port: Annotated[Optional[int], typer.Option(help="broker port (default: a free one)")] = None,
) -> None:
    """Bring up the local broker and Redis (reusing one that answers), create the topics,
    print the settings that point at them, and keep them up until Ctrl-C."""
    from fraudstream.stack import LocalStack

    settings = Settings()
    configure_logging(settings)
    with LocalStack(settings, kafka_port=kafka_port) as running:
        for name, value in running.env().items():
            if name.startswith("FRAUDSTREAM_"):
                typer.echo(f"export {name}={value}")
        typer.echo("# local stack is up; Ctrl-C stops it", err=True)
        run_until_signal(lambda stop: stop.wait())


@app.command()
def schemas(
    out: Annotated[Optional[Path], typer.Option(help="directory (default: the repo's schemas/)")] = None,
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


@app.command()
def topics() -> None:
    """Create every topic with its partitions and retention (idempotent)."""
    from shared.kafka import ensure_topics

    settings = Settings()
    asyncio.run(ensure_topics(settings))
    for name, t in TOPICS.items():
        typer.echo(f"{settings.topic(name):<28} {t.event.__name__:<22} key={t.key}")


def _sim_config(seed: int, cards: int, merchants: int, fraud_rate: float, label_delay_h: float,
                drift_after: Optional[int]) -> "SimulatorConfig":
    from datetime import timedelta

    from fraudstream.simulator.traffic import SimulatorConfig

    return SimulatorConfig(seed=seed, n_cards=cards, n_merchants=merchants, fraud_rate=fraud_rate,
                           label_delay_mean=timedelta(hours=label_delay_h), label_delay_sigma=0.5,
                           drift_at=drift_after)


Seed = Annotated[int, typer.Option(help="random seed: the same seed gives the same traffic")]
Cards = Annotated[int, typer.Option(help="cards in the simulated population")]
Merchants = Annotated[int, typer.Option(help="merchants in the simulated population")]
FraudRate = Annotated[float, typer.Option(help="share of transactions that are fraud")]
LabelDelay = Annotated[float, typer.Option("--label-delay-hours", help="mean chargeback delay, simulated hours")]
DriftAfter = Annotated[Optional[int], typer.Option(help="inject drift after this many transactions")]


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="transactions per second")] = 200.0,
    count: Annotated[Optional[int], typer.Option(help="stop after this many transactions")] = None,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds")] = None,
    csv: Annotated[Optional[Path], typer.Option(help="write transactions to this CSV instead of Kafka")] = None,
    seed: Seed = 7, cards: Cards = 10_000, merchants: Merchants = 1_000, fraud_rate: FraudRate = 0.007,
    label_delay_hours: LabelDelay = 48.0, drift_after: DriftAfter = None,
    long_frauds: Annotated[bool, typer.Option(help="add frauds that go on for weeks: compromised terminals "
                                                   "and compromised cards")] = False,
) -> None:
    """Publish seeded card traffic and delayed labels to transactions.raw / labels.raw (or a CSV)."""
    config = _sim_config(seed, cards, merchants, fraud_rate, label_delay_hours, drift_after)
    config = config.model_copy(update={"long_frauds": long_frauds})
    if csv is not None:
        from fraudstream.simulator.traffic import write_csv
        from fraudstream.simulator.traffic import simulate as stream

        rows = write_csv(stream(config, count or 100_000), csv)
        typer.echo(f"wrote {rows} transactions to {csv}")
        return
    from fraudstream.simulator.publish import publish

    settings = Settings()
    configure_logging(settings)
    tick = lambda p: typer.echo(f"\r{p.transactions} transactions, {p.labels} labels, {p.elapsed_s:.0f}s", nl=False)
    run_until_signal(lambda stop: publish(settings, config, rate, stop, count, duration, on_tick=tick))
    typer.echo()


@app.command()
def up(
    rate: Annotated[float, typer.Option(help="simulated transactions per second")] = 200.0,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds (default: until Ctrl-C)")] = None,
    external: Annotated[bool, typer.Option(help="use FRAUDSTREAM_KAFKA_BOOTSTRAP / REDIS_URL instead of a local stack")] = False,
    seed: Seed = 7, cards: Cards = 5_000, merchants: Merchants = 500, fraud_rate: FraudRate = 0.01,
    label_delay_hours: LabelDelay = 6.0, drift_after: DriftAfter = None,
) -> None:
    """The demo: broker, Redis, every service, simulated traffic, live scores and alerts."""
    from fraudstream.demo import run_demo

    base = Settings() if external else Settings(session_timeout_ms=3000, heartbeat_interval_ms=500)
    configure_logging(base)
    config = _sim_config(seed, cards, merchants, fraud_rate, label_delay_hours, drift_after)
    run_until_signal(lambda stop: run_demo(base, list(SERVICES), config, rate, duration, external, stop))
    typer.echo("stopped; services and the local stack are shut down")


@app.command()
def bench(
    stage: Annotated[str, typer.Argument(
        help="full (every service, labels flowing, and the baselines), ingest, features, pipeline or scoring")] = "full",
    events: Annotated[Optional[int], typer.Option(
        help="backlog size for the throughput run [default: 100,000 for ingest, else 30,000]")] = None,
    offered: Annotated[Optional[float], typer.Option(
        help="offered load for the latency run, transactions/s [default: half the throughput just measured]")] = None,
    latency_seconds: Annotated[float, typer.Option(help="length of the latency run")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as one JSON object")] = False,
) -> None:
    """Measure a stage's throughput (draining a backlog) and latency at a fixed load, on the local stack."""
    import dataclasses
    import json

    from fraudstream.bench import DEFAULT_EVENTS, STAGES, run_bench
    from fraudstream.stack import LocalStack

    if stage not in STAGES:
        raise typer.BadParameter(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    base = Settings(session_timeout_ms=3000, heartbeat_interval_ms=500, log_level="WARNING")
    with LocalStack(base) as stack:
        figures = asyncio.run(run_bench(stack.settings, stack.env(), stack.workdir, stage,
                                        events or DEFAULT_EVENTS[stage], offered, latency_seconds))
    typer.echo(json.dumps(dataclasses.asdict(figures)) if as_json else "\n".join(figures.lines()))


models_app = typer.Typer(help="List model versions, promote one, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Every announcement on model.versions, oldest first; * marks the champion."""
    from services.model import registry

    history = asyncio.run(registry.history(Settings()))
    current = registry.champion(history)
    for e in history:
        mark = "*" if current is not None and e is current else " "
        ap = e.metrics.get("average_precision")
        typer.echo(f"{mark} {e.version:<8} {e.status:<10} {e.reason:<9} parent={e.parent or '-':<8} "
                   f"labels={e.training_window.labels_seen:<7} AP={'-' if ap is None else f'{ap:.3f}'} "
                   f"{e.published_at:%Y-%m-%d %H:%M:%S}")


@models_app.command()
def promote(version: str) -> None:
    """Make VERSION the champion (every scoring replica and the learner follow)."""
    from services.model.operations import NoSuchVersion, promote as do_promote

    try:
        event = asyncio.run(do_promote(Settings(), version))
    except NoSuchVersion as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"promoted {event.version} (was {event.parent})")


@models_app.command()
def challenge(
    version: Annotated[Optional[str], typer.Argument(help="an existing version (e.g. a rejected retrain)")] = None,
    kind: Annotated[Optional[str], typer.Option(help="or a fresh model of this kind: linear, arf, amf")] = None,
) -> None:
    """Start a challenger that learns beside the champion and is shadow-scored on scores.shadow."""
    from services.model.operations import NoSuchVersion, challenge as do_challenge

    if (version is None) == (kind is None):
        raise typer.BadParameter("give either a VERSION or --kind")
    try:
        event = asyncio.run(do_challenge(Settings(), version, kind))
    except (NoSuchVersion, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"challenger {event.version} learns beside {event.parent}; promote it with `fraudstream models promote`")


@models_app.command()
def rollback() -> None:
    """Make the previous champion the champion again."""
    from services.model.operations import NoSuchVersion, rollback as do_rollback

    try:
        event = asyncio.run(do_rollback(Settings()))
    except NoSuchVersion as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"rolled back to {event.version} (was {event.parent})")


@app.command()
def retrain(
    reason: Annotated[str, typer.Option(help="why: recorded on the request and in the learner's log")],
    drift_event_id: Annotated[Optional[str], typer.Option(help="the drift event this answers, if any")] = None,
    since: Annotated[Optional[str], typer.Option(
        help="ISO 8601 event time the world changed (UTC if no offset): learn only labels of transactions "
             "from then on, in several passes, once enough are in")] = None,
) -> None:
    """Ask the learner for a challenger: trained on the recent labels, promoted only if it beats the champion."""
    from datetime import UTC, datetime

    from services.learner.service import request_retrain

    if not reason.strip():
        raise typer.BadParameter("give a reason")
    try:
        changed = None if since is None else datetime.fromisoformat(since)
    except ValueError as exc:
        raise typer.BadParameter(f"--since: not an ISO 8601 time: {since!r}") from exc
    if changed is not None and changed.tzinfo is None:
        changed = changed.replace(tzinfo=UTC)
    request = asyncio.run(request_retrain(Settings(), reason.strip(), "ops", drift_event_id, changed))
    queued = "" if changed is None else f" on labels since {request.since:%Y-%m-%d %H:%M:%S} UTC (queued until in)"
    typer.echo(f"retrain requested ({request.request_id}): {request.reason}{queued}; "
               "watch model.versions for the verdict")


@app.command()
def report(
    scores_csv: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                               help="a scores file, as `fraudstream replay --scores-out` writes")],
    start: Annotated[Optional[str], typer.Option(help="ISO time, inclusive (UTC unless it has a zone)")] = None,
    end: Annotated[Optional[str], typer.Option(help="ISO time, exclusive")] = None,
    k: Annotated[int, typer.Option(help="cards checked per day, for card precision@k")] = 100,
    alert_rate: Annotated[float, typer.Option(help="share of transactions alerted, for recall at that rate")] = 0.01,
    threshold: Annotated[float, typer.Option(help="alert threshold, for alerts per day")] = 0.8,
    json_out: Annotated[Optional[Path], typer.Option(help="also write the report as JSON to this file")] = None,
    plots: Annotated[Optional[Path], typer.Option(help="also write the report's PNGs into this directory")] = None,
) -> None:
    """Evaluate a scores file: ROC AUC, AP, card precision@k per day, recall at an alert rate, alerts/day."""
    from datetime import datetime

    from fraudstream.evaluation import build_report, read_scores
    from fraudstream.evaluation.outputs import write_outputs

    try:
        bounds = [None if t is None else datetime.fromisoformat(t) for t in (start, end)]
    except ValueError as exc:
        raise typer.BadParameter(f"--start/--end: {exc}") from exc
    try:
        rows = read_scores(scores_csv)
        result = build_report(rows, *bounds, k=k, alert_rate=alert_rate, threshold=threshold)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(result.table())
    for path in write_outputs(rows, result, json_out, plots):
        typer.echo(f"wrote {path}")


from fraudstream.replay.commands import evaluate as _evaluate, replay as _replay  # noqa: E402

app.command("replay")(_replay)
app.command("evaluate")(_evaluate)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
