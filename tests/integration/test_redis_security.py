"""Real services reach a Redis that wants a password, and one that speaks TLS with client
certificates and an ACL user, through Settings alone; a service run with a password never
writes it to its log, and one started before its Redis waits for it instead of crashing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from pydantic import SecretStr

from fraudstream.stack import free_port
from services.ingest import service as ingest
from shared.redis import make_redis, make_sync_redis
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce
from tests.servers import RedisServer, make_certs, until_status

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-staple"
WORKTREE = Path(__file__).resolve().parents[2]


def raw_tx(tx_id: str) -> bytes:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return orjson.dumps(dict(tx_id=tx_id, ts=ts, card_id="card-1", merchant_id="m-1", amount=12.5,
                             currency="eur", channel="pos", mcc="5411", country="fr"))


async def _ingest_dedups_through(settings, start_service) -> None:
    """ingest's dedup lives in Redis: a duplicate dropped proves the service used this Redis."""
    start_service(ingest.run, settings)
    await produce(settings, TRANSACTIONS_RAW, [(b"card-1", raw_tx(t)) for t in ("a", "b", "a")])
    async with Collector(settings, TRANSACTIONS_VALID) as seen:
        await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) >= 2)
        await seen.settle(0.5)
    assert sorted(orjson.loads(r.value)["tx_id"] for r in seen.of(TRANSACTIONS_VALID)) == ["a", "b"]


async def test_a_service_uses_a_password_protected_redis(settings, start_service, tmp_path):
    server = RedisServer(tmp_path, "--requirepass", PASSWORD).start()
    try:
        locked = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{server.port}/0"})
        with pytest.raises(redis.AuthenticationError):
            make_sync_redis(locked).ping()
        unlocked = locked.model_copy(update={"redis_password": SecretStr(PASSWORD)})
        await _ingest_dedups_through(unlocked, start_service)
    finally:
        server.stop()


async def test_a_service_uses_redis_over_tls_with_a_client_certificate_and_an_acl_user(
        settings, start_service, tmp_path):
    certs = make_certs(tmp_path)
    server = RedisServer(
        tmp_path, "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes",
        "--user", "default", "off", "--user", "fraudstream", "on", f">{PASSWORD}", "~*", "&*", "+@all", tls=True,
    ).start()
    try:
        secure = settings.model_copy(update=dict(
            redis_url=f"rediss://127.0.0.1:{server.port}/0", redis_username="fraudstream",
            redis_password=SecretStr(PASSWORD), redis_ssl_cafile=certs.ca,
            redis_ssl_certfile=certs.client_cert, redis_ssl_keyfile=certs.client_key,
        ))
        store = make_redis(secure)
        assert await store.ping()
        await store.aclose()
        with pytest.raises(redis.ConnectionError):  # no client certificate: the handshake is refused
            make_sync_redis(secure.model_copy(update={"redis_ssl_certfile": None, "redis_ssl_keyfile": None})).ping()
        await _ingest_dedups_through(secure, start_service)
    finally:
        server.stop()


async def test_a_service_waits_for_its_redis_and_never_logs_the_password(settings, tmp_path):
    server = RedisServer(tmp_path, "--requirepass", PASSWORD)  # not started yet
    port = free_port()
    env = os.environ | {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAUDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "FRAUDSTREAM_REDIS_PREFIX": settings.redis_prefix,
        "FRAUDSTREAM_REDIS_URL": f"redis://127.0.0.1:{server.port}/0",
        "FRAUDSTREAM_REDIS_PASSWORD": PASSWORD,
        "FRAUDSTREAM_METRICS_PORT": str(port),
        "FRAUDSTREAM_SESSION_TIMEOUT_MS": "2000",
        "FRAUDSTREAM_LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "shared.launcher", "ingest"], cwd=WORKTREE, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    try:
        await until_status(f"http://127.0.0.1:{port}/healthz", 503)  # up, but not consuming
        deadline_text = f"waiting for Redis at 127.0.0.1:{server.port}"
        await _until_logged(log, deadline_text)
        server.start()
        await until_status(f"http://127.0.0.1:{port}/readyz", 200, timeout_s=60)
        await until_status(f"http://127.0.0.1:{port}/healthz", 200)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        server.stop()
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text[-2000:]
    assert deadline_text in text
    assert PASSWORD not in text


async def _until_logged(log: Path, text: str, timeout_s: float = 30.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged within {timeout_s}s:\n{log.read_text()[-2000:]}")
        await asyncio.sleep(0.05)  # polling another process's log file
