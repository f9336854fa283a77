"""``fraudstream-service NAME`` (``python -m shared.launcher NAME``): run one pipeline service
until SIGINT/SIGTERM, the container's command: settings, logging, the health and metrics
server, then the service's ``run``. The table names each service's module; it is imported
by name, so ``shared`` still imports nothing of ``services``.
"""

from __future__ import annotations

import importlib
import sys

from shared.health_server import serve
from shared.lifecycle import configure_logging, run_until_signal
from shared.settings import Settings

SERVICES = {
    "ingest": "services.ingest.service",
    "features": "services.features.service",
    "scoring": "services.scoring.service",
    "learner": "services.learner.service",
    "monitor": "services.monitor.service",
    "dashboard": "services.dashboard.service",
}
"""The pipeline's services, in pipeline order: name → the module with its ``run(settings, stop)``."""


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(f"usage: fraudstream-service {{{','.join(SERVICES)}}}", file=sys.stderr)
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
