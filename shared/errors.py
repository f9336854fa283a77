"""The project's own errors: one root, so callers can tell ours from a library's.

Transient failures of Redis or Kafka are deliberately *not* wrapped in these: they keep
their library types, which the runner retries (``shared.runner.TRANSIENT``). An error
here is permanent for the input or the artifact it names.
"""

from __future__ import annotations


class FraudstreamError(Exception):
    """Root of every error this project raises on purpose."""


class DecodeError(FraudstreamError, ValueError):
    """Bytes that are not a valid event; the message says why, in words (a dead letter's reason)."""


class TopicsMissing(FraudstreamError, RuntimeError):
    """The broker lacks topics a service needs (a fresh or restarted memory broker)."""


class ArtifactError(FraudstreamError):
    """An artifact could not be found, verified or loaded: permanent for that reference."""
