"""A real service's /healthz and /readyz: ready and healthy under load, not ready while its
Redis is down (yet alive: the loop still turns), ready again when Redis is back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.ingest import service as ingest
from shared.health import HEALTH
from shared.health_server import HealthServer
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce
from tests.servers import RedisServer, http_get, until_status

pytestmark = pytest.mark.integration


def raw_tx(i: int) -> bytes:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return orjson.dumps(dict(tx_id=f"tx-{i}", ts=ts, card_id=f"card-{i % 97}", merchant_id="m-1", amount=12.5,
                             currency="eur", channel="pos", mcc="5411", country="fr"))


@pytest.fixture
def server():
    HEALTH.clear()  # earlier tests ran other services in this process
    served = HealthServer(0, host="127.0.0.1")
    yield f"http://127.0.0.1:{served.port}"
    served.close()
    HEALTH.clear()


async def test_ready_and_healthy_under_load_not_ready_without_redis(settings, start_service, server, tmp_path):
    redis_server = RedisServer(tmp_path).start()
    own = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{redis_server.port}/0", "batch_max": 100})
    try:
        start_service(ingest.run, own)
        body = json.loads(await until_status(f"{server}/readyz", 200))
        assert {"ingest consumer group", "ingest redis"} <= set(body["checks"])

        load = asyncio.create_task(produce(own, TRANSACTIONS_RAW, [(None, raw_tx(i)) for i in range(5000)]))
        async with Collector(own, TRANSACTIONS_VALID) as seen:
            answers = []
            while (done := len(seen.of(TRANSACTIONS_VALID))) < 5000:
                answers.append((await asyncio.to_thread(http_get, f"{server}/healthz"))[0])
                answers.append((await asyncio.to_thread(http_get, f"{server}/readyz"))[0])
                await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) > done)  # probe again on progress
        await load
        assert len(answers) >= 6 and set(answers) == {200}

        redis_server.stop()
        body = json.loads(await until_status(f"{server}/readyz", 503))
        assert "ingest redis" in body["failing"]
        assert http_get(f"{server}/healthz")[0] == 200  # the loop still turns: alive, just not ready

        redis_server.start()
        await until_status(f"{server}/readyz", 200)
        await produce(own, TRANSACTIONS_RAW, [(None, raw_tx(9999))])
        async with Collector(own, TRANSACTIONS_VALID) as seen:
            await seen.until(
                lambda c: any(orjson.loads(r.value)["tx_id"] == "tx-9999" for r in c.of(TRANSACTIONS_VALID)))
    finally:
        redis_server.stop()
