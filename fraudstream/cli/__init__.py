"""``fraudstream``: the commands people run by hand, grouped by who runs them.

One module per group: ``run`` (the demo, a service, the local stack, the simulator),
``ops`` (models, retrains, tail, topics, dead letters), ``analysis`` (replay, evaluate,
report) and ``dev`` (bench, schemas). Each command parses options, builds Settings from
the environment and calls into the library; ``main`` turns everyday mistakes (no broker,
a bad setting) into one line with the fix.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from fraudstream.cli import analysis, dev, ops, run
from fraudstream.cli.errors import explain, quiet_client_noise
from services import SERVICES

app = typer.Typer(help="Real-time card-fraud detection on Kafka and Redis.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _version() -> str:
    try:
        return version("fraudstream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"fraudstream {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """Real-time card-fraud detection on Kafka and Redis."""


for group in (run, ops, analysis, dev):
    group.register(app)


def main() -> None:
    """The ``fraudstream`` console script."""
    quiet_client_noise()
    try:
        app()
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        print(f"fraudstream: {message}", file=sys.stderr)
        sys.exit(1)


__all__ = ["SERVICES", "app", "main"]
