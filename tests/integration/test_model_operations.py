"""Promote and roll back are events on model.versions that scoring follows."""

from __future__ import annotations

import pytest

from services.model import registry
from services.model.operations import promote, rollback
from shared.codec import encode
from shared.events import ModelVersionPublished
from shared.topics import MODEL_VERSIONS
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration


def announced(version: str, parent: str | None, sha: str) -> ModelVersionPublished:
    return ModelVersionPublished(version=version, parent=parent, reason="periodic", status="champion",
                                 artifact_ref=f"redis:x:{version}", artifact_sha256=sha * 64)


async def test_rollback_then_promote(settings):
    await produce(settings, MODEL_VERSIONS, [(b"v1", encode(announced("v1", None, "a"))),
                                              (b"v2", encode(announced("v2", "v1", "b")))])
    back = await rollback(settings)
    assert (back.version, back.reason, back.parent, back.artifact_sha256) == ("v1", "rollback", "v2", "a" * 64)
    assert registry.champion(await registry.history(settings)).version == "v1"
    forward = await promote(settings, "v2")
    assert (forward.version, forward.reason, forward.parent) == ("v2", "promote", "v1")
    history = await registry.history(settings)
    assert [e.version for e in history] == ["v1", "v2", "v1", "v2"] and registry.next_version(history) == "v3"
