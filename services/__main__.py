"""``python -m services NAME``: run one service until SIGINT/SIGTERM (the container's command)."""

from __future__ import annotations

import importlib
import sys

from services import SERVICES
from shared.health_server import serve
from shared.lifecycle import configure_logging, run_until_signal
from shared.settings import Settings


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(f"usage: python -m services {{{','.join(SERVICES)}}}", file=sys.stderr)
        return 2
    settings = Settings()
    configure_logging(settings)
    serve(settings.metrics_port)
    module = importlib.import_module(SERVICES[argv[0]])
    run_until_signal(lambda stop: module.run(settings, stop))
    return 0


def cli() -> None:
    """The ``fraudstream-service`` console script."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    cli()
