"""The pipeline: one package per service, plus ``model``, which scoring and learner share.

Each service module declares ``SPEC`` (a ``shared.runner.ServiceSpec``: its inputs, as the
topic table names them, and ``build``, its composition root) and ``run(settings, stop)``;
``python -m services NAME`` runs one (what a container runs).
"""

SERVICES = {
    "ingest": "services.ingest.service",
    "features": "services.features.service",
    "scoring": "services.scoring.service",
    "learner": "services.learner.service",
    "monitor": "services.monitor.service",
    "dashboard": "services.dashboard.service",
}
