"""The pipeline: one package per service, plus ``model``, which scoring and learner share.

Each service module declares ``SPEC`` (a ``shared.runner.ServiceSpec``: its inputs, as the
topic table names them, and ``build``, its composition root) and ``run(settings, stop)``;
``fraudstream-service NAME`` (``shared/launcher.py``) runs one (what a container runs).
"""

from shared.launcher import SERVICES

__all__ = ["SERVICES"]
