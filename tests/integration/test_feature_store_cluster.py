"""The batched feature call against a real three-master Redis Cluster: one script call
per hash slot, and the same features as a single Redis."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time

import pytest
import redis.asyncio as aioredis

from fraudstream.bench.feature_store import synthetic_stream
from services.features.store import FeatureStore
from shared.events import Label, Transaction

pytestmark = pytest.mark.integration


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: at most 55535."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


def _cluster_support() -> bool:
    """redis-server and redis-cli 5 or later (``redis-cli --cluster create``)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return False
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    major = version.split("v=", 1)[-1].split(".", 1)[0]
    return major.isdigit() and int(major) >= 5


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    if not _cluster_support():
        pytest.skip("redis-server without cluster support")
    nodes = []
    try:
        for _ in range(3):
            port, folder = _free_port(), tmp_path_factory.mktemp("redis-cluster")
            process = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder), "--save", "",
                 "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            nodes.append((port, process))
        deadline = time.monotonic() + 10
        for port, process in nodes:
            ping = ["redis-cli", "-p", str(port), "ping"]
            while subprocess.run(ping, capture_output=True, check=False).stdout.strip() != b"PONG":
                assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p, _ in nodes), "--cluster-replicas", "0",
             "--cluster-yes"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            pytest.skip(f"redis-cli could not create a cluster: {created.stdout[-300:]}")
        deadline = time.monotonic() + 20
        for port, _ in nodes:
            while b"cluster_state:ok" not in subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"],
                                                            capture_output=True, check=False).stdout:  # fmt: skip
                assert time.monotonic() < deadline, "the cluster never became ready"
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{nodes[0][0]}/0"
    finally:
        for _, process in nodes:
            process.terminate()
        for _, process in nodes:
            process.wait(timeout=10)


async def apply_all(store: FeatureStore, events: list) -> list:
    out, txs, labels = [], [], []
    for event in events + [None]:
        if isinstance(event, Transaction) and not labels:
            txs.append(event)
            continue
        if txs:
            out += await store.apply(txs)
            txs = []
        if isinstance(event, Label):
            labels.append(event)
            continue
        if labels:
            out += await store.apply_labels(labels)
            labels = []
        if isinstance(event, Transaction):
            txs.append(event)
    return out


async def test_a_cluster_gives_the_features_of_a_single_redis(cluster_url, settings, redis_client):
    events = synthetic_stream(seed=21, n=1500, cards=150, merchants=40)
    single = await apply_all(FeatureStore(redis_client, settings), events)

    clustered = settings.model_copy(update={"redis_url": cluster_url, "redis_cluster": True})
    client = aioredis.RedisCluster.from_url(cluster_url)
    try:
        store = FeatureStore(client, clustered)
        assert await apply_all(store, events) == single
        txs = [e for e in events if isinstance(e, Transaction)]
        assert await store.lookup_vectors([(t.card_id, t.tx_id) for t in txs]) == await FeatureStore(
            redis_client, settings
        ).lookup_vectors([(t.card_id, t.tx_id) for t in txs])
        masters = {n.port for n in client.get_primaries()}
        assert len(masters) == 3
        for node in client.get_primaries():
            assert await client.dbsize(target_nodes=node) > 0, "the state is spread over every master"
    finally:
        await client.aclose()
