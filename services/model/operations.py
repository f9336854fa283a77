"""What ops do with model versions: list them, promote one, roll back. Each action is an
event on ``model.versions``; every scoring replica and the learner follow it.

>>> from shared.events import ModelVersionPublished as V
>>> h = [V(version="v1", reason="initial", status="champion", artifact_ref="r1", artifact_sha256="a" * 64),
...      V(version="v2", parent="v1", reason="periodic", status="champion", artifact_ref="r2",
...        artifact_sha256="b" * 64)]
>>> rollback_target(h).version
'v1'
"""

from __future__ import annotations

from services.model import registry
from shared.codec import encode
from shared.events import ModelVersionPublished, utcnow
from shared.kafka import publish_one
from shared.settings import Settings
from shared.topics import MODEL_VERSIONS


class NoSuchVersion(LookupError):
    """The version asked for is not on ``model.versions`` (or cannot serve)."""


def latest_of(history: list[ModelVersionPublished], version: str) -> ModelVersionPublished:
    for event in reversed(history):
        if event.version == version and event.status != "rejected":
            return event
    raise NoSuchVersion(f"no usable version {version!r} on {MODEL_VERSIONS}")


def rollback_target(history: list[ModelVersionPublished]) -> ModelVersionPublished:
    """The champion before the current one."""
    current = registry.champion(history)
    if current is None:
        raise NoSuchVersion("no champion to roll back from")
    for event in reversed(history):
        if event.status == "champion" and event.version != current.version:
            return event
    raise NoSuchVersion(f"{current.version} has no earlier champion")


async def announce(settings: Settings, source: ModelVersionPublished, reason: str,
                   status: str = "champion") -> ModelVersionPublished:
    current = registry.champion(await registry.history(settings))
    event = source.model_copy(update={
        "status": status, "reason": reason, "parent": current.version if current else None,
        "published_at": utcnow(),
    })
    await publish_one(settings, MODEL_VERSIONS, event.version.encode(), encode(event))
    return event


async def promote(settings: Settings, version: str) -> ModelVersionPublished:
    return await announce(settings, latest_of(await registry.history(settings), version), "promote")


async def rollback(settings: Settings) -> ModelVersionPublished:
    return await announce(settings, rollback_target(await registry.history(settings)), "rollback")


async def challenge(settings: Settings, version: str | None = None, kind: str | None = None) -> ModelVersionPublished:
    """Start a challenger beside the champion: an existing version (e.g. a rejected
    retrain), or a fresh model of another ``kind`` (``arf``, ``amf``, ``linear``)."""
    history = await registry.history(settings)
    if version is not None:
        return await announce(settings, latest_of(history, version), "challenge", status="challenger")
    from services.model.artifacts import dump, make_store
    from services.model.fraud_model import FraudModel
    from shared.redis import make_redis

    redis = make_redis(settings)
    try:
        name = registry.next_version(history)
        blob, sha = dump(FraudModel(kind or "linear", genuine_rate=settings.genuine_sample_rate))
        ref = await make_store(settings, redis).put(name, blob)
    finally:
        await redis.aclose()
    fresh = ModelVersionPublished(version=name, reason="challenge", status="challenger",
                                  artifact_ref=ref, artifact_sha256=sha)
    return await announce(settings, fresh, "challenge", status="challenger")
