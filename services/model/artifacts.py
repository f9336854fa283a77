"""Model artifacts: bytes + sha256, kept in an artifact store, loaded only when verified.

The learner ``dump``s a model, ``put``s the bytes and announces the reference and sha256 on
``model.versions``; every scoring replica ``load_verified``s them, and on ``ArtifactError``
keeps the model it has. The sha256 proves the bytes are the ones announced; pickles are code,
so the store itself must be writable by the learner only.

>>> from services.model.fraud_model import FraudModel
>>> blob, sha = dump(FraudModel())
>>> load(blob, sha).kind, len(sha)
('linear', 64)
>>> load(blob[:-1], sha)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
shared.errors.ArtifactError: artifact sha256 mismatch: expected ..., got ...
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.model.batch import BatchModel, Model
from services.model.fraud_model import FraudModel
from shared.errors import ArtifactError
from shared.redis import AsyncRedis
from shared.settings import Settings

__all__ = ["ArtifactError", "ArtifactStore", "FileArtifactStore", "RedisArtifactStore", "dump", "load",
           "load_verified", "make_store"]

FORMAT = 1
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # safe as a Redis key part and a file name


# Redis away is transient: those errors keep their type, so the caller retries them
# instead of refusing the model for good (only a bad artifact is permanent).
_TRANSIENT = (RedisConnectionError, RedisTimeoutError)


def dump(model: Model) -> tuple[bytes, str]:
    """The model as bytes (with its kind and feature names alongside) and their sha256."""
    envelope = {"format": FORMAT, "kind": model.kind, "features": model.feature_names, "model": model}
    blob = pickle.dumps(envelope, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, hashlib.sha256(blob).hexdigest()


def load(blob: bytes, sha256: str) -> Model:
    actual = hashlib.sha256(blob).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"artifact sha256 mismatch: expected {sha256}, got {actual}")
    try:
        envelope = pickle.loads(blob)
    except Exception as exc:  # unpickling can raise almost anything; all mean "not a model"
        raise ArtifactError(f"artifact does not unpickle: {exc!r}") from exc
    if not (isinstance(envelope, dict) and envelope.get("format") == FORMAT):
        raise ArtifactError(f"artifact is not a format-{FORMAT} model envelope")
    model = envelope.get("model")
    if not isinstance(model, FraudModel | BatchModel):
        raise ArtifactError(f"artifact is not a format-{FORMAT} FraudModel or BatchModel")
    return model


class ArtifactStore(Protocol):
    """Where model bytes live. ``put`` returns the reference that ``get`` takes back;
    ``retire`` lets the artifact at a reference go ``after_s`` from now."""

    async def put(self, version: str, blob: bytes) -> str: ...

    async def get(self, ref: str) -> bytes: ...

    async def retire(self, ref: str, after_s: float) -> None: ...


class RedisArtifactStore:
    """Artifacts as Redis strings at ``{prefix}:artifact:{version}``; ref ``redis:<key>``."""

    def __init__(self, redis: AsyncRedis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix

    async def put(self, version: str, blob: bytes) -> str:
        key = f"{self.prefix}:artifact:{_checked(version)}"
        try:
            await self.redis.set(key, blob)
        except _TRANSIENT:
            raise
        except RedisError as exc:
            raise ArtifactError(f"cannot store artifact {key}: {exc!r}") from exc
        return f"redis:{key}"

    async def retire(self, ref: str, after_s: float) -> None:
        """The key expires ``after_s`` from now (at once for 0); a key gone already stays gone."""
        key = self._key(ref)
        try:
            await self.redis.expire(key, max(1, round(after_s)))
        except _TRANSIENT:
            raise
        except RedisError as exc:
            raise ArtifactError(f"cannot retire artifact {key}: {exc!r}") from exc

    def _key(self, ref: str) -> str:
        if not ref.startswith(f"redis:{self.prefix}:artifact:"):
            raise ArtifactError(f"not an artifact of this Redis store: {ref!r}")
        return ref.removeprefix("redis:")

    async def get(self, ref: str) -> bytes:
        self._key(ref)
        try:
            # our clients never decode responses: a string value is bytes (redis-py types any reply)
            blob = cast(bytes | None, await self.redis.get(ref.removeprefix("redis:")))
        except _TRANSIENT:
            raise
        except RedisError as exc:
            raise ArtifactError(f"cannot read artifact {ref}: {exc!r}") from exc
        if blob is None:
            raise ArtifactError(f"no artifact at {ref}")
        return blob


class FileArtifactStore:
    """Artifacts as ``{root}/{version}.model``, written atomically; ref ``file://<path>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    async def put(self, version: str, blob: bytes) -> str:
        path = self.root / f"{_checked(version)}.model"
        await asyncio.to_thread(_write_atomically, path, blob)
        await asyncio.to_thread(self._sweep)
        return f"file://{path}"

    async def retire(self, ref: str, after_s: float) -> None:
        """A ``.retire`` file beside the artifact holds its deadline; each ``put`` sweeps the past ones."""
        path = self._path(ref)
        await asyncio.to_thread(_write_atomically, path.with_suffix(".retire"),
                                repr(time.time() + after_s).encode())

    def _sweep(self) -> None:
        now = time.time()
        for mark in self.root.glob("*.retire"):
            try:
                if float(mark.read_text()) <= now:
                    mark.with_suffix(".model").unlink(missing_ok=True)
                    mark.unlink(missing_ok=True)
            except (OSError, ValueError):
                continue  # another learner swept it, or a torn mark: the next put tries again

    def _path(self, ref: str) -> Path:
        path = Path(ref.removeprefix("file://")).resolve()
        if not ref.startswith("file://") or path.parent != self.root:
            raise ArtifactError(f"not an artifact of the file store at {self.root}: {ref!r}")
        return path

    async def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise ArtifactError(f"cannot read artifact {ref}: {exc}") from exc


def _write_atomically(path: Path, blob: bytes) -> None:
    # Readers see the old file or the whole new one, never half of it: write aside, then rename.
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(blob)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
        raise ArtifactError(f"cannot write artifact {path}: {exc}") from exc


def _checked(version: str) -> str:
    if not _VERSION.match(version):
        raise ArtifactError(f"model version {version!r} must match {_VERSION.pattern}")
    return version


async def load_verified(store: ArtifactStore, ref: str, sha256: str) -> Model:
    """The model at ``ref``, or ``ArtifactError`` if it is missing, altered or not a model."""
    return load(await store.get(ref), sha256)


def make_store(settings: Settings, redis: AsyncRedis | None = None) -> ArtifactStore:
    """The store ``settings.artifact_store`` names: ``redis`` or ``file:///some/dir``."""
    where = settings.artifact_store
    if where == "redis":
        if redis is None:
            raise ArtifactError("artifact_store is 'redis' but no Redis client was given")
        return RedisArtifactStore(redis, settings.redis_prefix)
    if where.startswith("file://"):
        return FileArtifactStore(where.removeprefix("file://"))
    raise ArtifactError(f"artifact_store must be 'redis' or 'file:///path', not {where!r}")
