"""``fraudstream``: run the demo, a service, the simulator, and read what flows.

Thin on purpose: each command parses options, builds Settings from the environment and
calls into the services.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from shared.settings import Settings
from shared.topics import TOPICS

app = typer.Typer(help="Real-time card-fraud detection on Kafka and Redis.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

SERVICES = {
    "ingest": "services.ingest.service",
    "features": "services.features.service",
    "scoring": "services.scoring.service",
    "learner": "services.learner.service",
    "monitor": "services.monitor.service",
}


def available_services() -> list[str]:
    return [name for name, module in SERVICES.items() if importlib.util.find_spec(module) is not None]


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run_until_signal(main) -> None:
    """Run ``main(stop)`` and set ``stop`` on SIGINT/SIGTERM, so services drain and commit."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


@app.command()
def service(name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]) -> None:
    """Run one service (what a container runs)."""
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    settings = Settings()
    configure_logging(settings)
    from shared.metrics import serve

    serve(settings.metrics_port)
    module = importlib.import_module(SERVICES[name])
    run_until_signal(lambda stop: module.run(settings, stop))


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(TOPICS)}")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", "-b")] = False,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many records")] = None,
) -> None:
    """Follow a topic and print each event as one readable line."""
    if topic not in TOPICS:
        raise typer.BadParameter(f"unknown topic {topic!r}; choose from {', '.join(TOPICS)}")
    from services.console import tail as follow

    run_until_signal(lambda stop: _until(stop, follow(Settings(), topic, from_beginning, limit)))


async def _until(stop: asyncio.Event, coro) -> None:
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, waiter):
        t.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)


@app.command()
def schemas(
    out: Annotated[Optional[Path], typer.Option(help="directory (default: the repo's schemas/)")] = None,
    check: Annotated[bool, typer.Option(help="only check the committed files are current")] = False,
) -> None:
    """Export the JSON Schema of every event (or check the exported files are current)."""
    from shared import schemas as schema_files

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
