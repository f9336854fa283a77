"""Run: the demo, one service, the local stack, simulated traffic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services import SERVICES
from shared.lifecycle import configure_logging, run_until_signal
from shared.settings import Settings

if TYPE_CHECKING:
    from fraudstream.simulator.traffic import SimulatorConfig

PANEL = "Run"


def register(app: typer.Typer) -> None:
    for command in (up, service, stack, simulate):
        app.command(rich_help_panel=PANEL)(command)


def service(name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]) -> None:
    """Run one service (what a container runs; there it is `fraudstream-service NAME`)."""
    from shared.launcher import main as run_service_main

    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    raise typer.Exit(run_service_main([name]))


def stack(
    kafka_port: Annotated[int | None, typer.Option(help="broker port (default: a free one)")] = None,
) -> None:
    """Bring up a local broker and Redis, create the topics, print the settings to export; Ctrl-C stops.

    A Redis that already answers on the configured URL is reused."""
    from fraudstream.stack import LocalStack

    settings = Settings()
    configure_logging(settings)
    with LocalStack(settings, kafka_port=kafka_port) as running:
        for name, value in running.env().items():
            if name.startswith("FRAUDSTREAM_"):
                typer.echo(f"export {name}={value}")
        typer.echo("# local stack is up; Ctrl-C stops it", err=True)
        run_until_signal(lambda stop: stop.wait())


def _sim_config(seed: int, cards: int, merchants: int, fraud_rate: float, label_delay_h: float,
                drift_after: int | None) -> SimulatorConfig:
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
DriftAfter = Annotated[int | None, typer.Option(help="inject drift after this many transactions")]


def simulate(
    rate: Annotated[float, typer.Option(help="transactions per second")] = 200.0,
    count: Annotated[int | None, typer.Option(help="stop after this many transactions")] = None,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    csv: Annotated[Path | None, typer.Option(help="write transactions to this CSV instead of Kafka")] = None,
    seed: Seed = 7, cards: Cards = 10_000, merchants: Merchants = 1_000, fraud_rate: FraudRate = 0.007,
    label_delay_hours: LabelDelay = 48.0, drift_after: DriftAfter = None,
    long_frauds: Annotated[bool | None, typer.Option(help="add frauds that go on for weeks: compromised "
                                                          "terminals and compromised cards (default: when the "
                                                          "run spans 28 days or more)")] = None,
) -> None:
    """Publish seeded card traffic and delayed labels to transactions.raw / labels.raw (or a CSV)."""
    config = _sim_config(seed, cards, merchants, fraud_rate, label_delay_hours, drift_after)
    config = config.model_copy(update={"long_frauds": long_frauds})
    if csv is not None:
        from fraudstream.simulator.traffic import simulate as stream
        from fraudstream.simulator.traffic import write_csv

        rows = write_csv(stream(config, count or 100_000), csv)
        typer.echo(f"wrote {rows} transactions to {csv}")
        return
    from fraudstream.simulator.publish import publish

    settings = Settings()
    configure_logging(settings)
    tick = lambda p: typer.echo(f"\r{p.transactions} transactions, {p.labels} labels, {p.elapsed_s:.0f}s", nl=False)
    run_until_signal(lambda stop: publish(settings, config, rate, stop, count, duration, on_tick=tick))
    typer.echo()


def up(
    rate: Annotated[float, typer.Option(help="simulated transactions per second")] = 200.0,
    duration: Annotated[float | None, typer.Option(
        help="seconds of traffic once every service is ready (default: until Ctrl-C)")] = None,
    external: Annotated[bool, typer.Option(
        help="use FRAUDSTREAM_KAFKA_BOOTSTRAP / REDIS_URL instead of a local stack")] = False,
    drift: Annotated[bool, typer.Option(
        help="change the world 75 s in (after the monitor's warm-up) and show the loop: "
             "drift, retrain, promotion, recovery")] = False,
    seed: Seed = 7, cards: Cards = 5_000, merchants: Merchants = 500, fraud_rate: FraudRate = 0.01,
    label_delay_hours: LabelDelay = 1.0, drift_after: DriftAfter = None,
) -> None:
    """The demo: broker, Redis, every service, simulated traffic, live scores and alerts."""
    from fraudstream.demo import run_demo

    base = Settings() if external else Settings(session_timeout_ms=3000, heartbeat_interval_ms=500)
    configure_logging(base)
    config = _sim_config(seed, cards, merchants, fraud_rate, label_delay_hours, drift_after)
    if drift:
        from fraudstream.demo import with_drift

        config = with_drift(config, rate, drift_after)
    run_until_signal(lambda stop: run_demo(base, list(SERVICES), config, rate, duration, external, stop,
                                           drift=drift))
    typer.echo("stopped; services and the local stack are shut down")
