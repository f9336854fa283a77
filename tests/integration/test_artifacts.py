"""Artifact stores against the real Redis and a real directory."""

from __future__ import annotations

import hashlib

import pytest

from services.model.artifacts import ArtifactError, FileArtifactStore, dump, load_verified, make_store
from services.model.fraud_model import FraudModel

pytestmark = pytest.mark.integration

X = {"card_tx_count_1h": 9.0, "amount": 120.0}


def a_model() -> FraudModel:
    model = FraudModel()
    for i in range(50):
        model.learn({"card_tx_count_1h": float(i % 3), "amount": 20.0 + i}, False)
        model.learn({"card_tx_count_1h": 8.0 + i % 4, "amount": 300.0 + i}, True)
    return model


async def test_redis_store_round_trip_is_verified(settings, redis_client):
    store = make_store(settings, redis_client)
    model = a_model()
    blob, sha = dump(model)
    ref = await store.put("v1", blob)
    assert ref == f"redis:{settings.redis_prefix}:artifact:v1"
    assert await redis_client.get(ref.removeprefix("redis:")) == blob
    assert (await load_verified(store, ref, sha)).score(X) == model.score(X)


async def test_redis_store_refuses_missing_altered_and_foreign_artifacts(settings, redis_client):
    store = make_store(settings, redis_client)
    blob, sha = dump(a_model())
    ref = await store.put("v2", blob)
    with pytest.raises(ArtifactError, match="no artifact at"):
        await load_verified(store, f"redis:{settings.redis_prefix}:artifact:v404", sha)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        await load_verified(store, ref, "0" * 64)
    with pytest.raises(ArtifactError, match="not an artifact of this Redis store"):
        await load_verified(store, "redis:someone-else:artifact:v2", sha)

    corrupted = blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:]
    await redis_client.set(ref.removeprefix("redis:"), corrupted)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        await load_verified(store, ref, sha)
    with pytest.raises(ArtifactError):  # even announced with its own sha, it is not a model
        await load_verified(store, ref, hashlib.sha256(corrupted).hexdigest())


async def test_file_store_round_trip_writes_atomically(tmp_path, settings):
    store = make_store(settings.model_copy(update={"artifact_store": f"file://{tmp_path}/models"}))
    first, second = a_model(), FraudModel()
    ref = await store.put("v1", dump(first)[0])
    blob, sha = dump(second)
    assert await store.put("v1", blob) == ref == f"file://{tmp_path}/models/v1.model"  # replaced whole
    assert (await load_verified(store, ref, sha)).score(X) == second.score(X)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["v1.model"]  # no temp file left


async def test_file_store_refuses_missing_foreign_and_unsafe_artifacts(tmp_path):
    store = FileArtifactStore(tmp_path / "models")
    (tmp_path / "outside.model").write_bytes(b"not yours")
    with pytest.raises(ArtifactError, match="cannot read artifact"):
        await store.get(f"file://{tmp_path}/models/v404.model")
    with pytest.raises(ArtifactError, match="not an artifact of the file store"):
        await store.get(f"file://{tmp_path}/models/../outside.model")
    with pytest.raises(ArtifactError, match="not an artifact of the file store"):
        await store.get("redis:fs:artifact:v1")
    with pytest.raises(ArtifactError, match="must match"):
        await store.put("../escape", b"x")


async def test_a_retired_artifact_goes_after_its_grace_in_either_store(settings, redis_client, tmp_path):
    blob, sha = dump(FraudModel())
    store = make_store(settings, redis_client)
    kept, retired = await store.put("v1", blob), await store.put("v2", blob)
    await store.retire(retired, 600)
    key = retired.removeprefix("redis:")
    assert 590 <= await redis_client.ttl(key) <= 600 and await redis_client.ttl(kept.removeprefix("redis:")) == -1
    await store.retire(retired, 0)  # at once (1 s: Redis's least)
    await store.retire(kept.replace("v1", "never"), 60)  # a key gone already stays gone
    assert await redis_client.exists(kept.replace("v1", "never").removeprefix("redis:")) == 0
    assert (await load_verified(store, kept, sha)).kind == "linear"

    files = FileArtifactStore(tmp_path)
    old, young = await files.put("v1", blob), await files.put("v2", blob)
    await files.retire(old, 0)
    await files.retire(young, 600)
    await files.put("v3", blob)  # each put sweeps what is past its deadline
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2.model", "v2.retire", "v3.model"]
    with pytest.raises(ArtifactError):
        await files.get(old)
