"""A service started before its broker waits, saying so, and runs once the broker is up."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from fraudstream.stack import free_port, tansu_binary
from services.ingest import service as ingest
from shared.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


async def _until_logged(caplog, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout_s}s"
        await asyncio.sleep(0.05)  # the service logs from its own task


async def test_a_service_waits_for_an_unreachable_broker_then_runs(settings, caplog):
    caplog.set_level(logging.WARNING, logger="shared.kafka")
    caplog.set_level(logging.INFO, logger="shared.runner")
    port = free_port()
    own = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    stop = asyncio.Event()
    service = asyncio.create_task(ingest.run(own, stop))
    broker = None
    try:
        await _until_logged(caplog, f"waiting for Kafka at 127.0.0.1:{port} (PLAINTEXT)")
        assert not service.done()  # waiting, not crashed
        broker = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await _until_logged(caplog, "ingest: consuming")  # reached the broker, made its topics, joined
        ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        tx = dict(tx_id="after-wait", ts=ts, card_id="card-1", merchant_id="m-1", amount=3.5, currency="eur",
                  channel="pos", mcc="5411", country="fr")
        await produce(own, TRANSACTIONS_RAW, [(b"card-1", orjson.dumps(tx))])
        async with Collector(own, TRANSACTIONS_VALID) as seen:
            await seen.until(lambda c: bool(c.of(TRANSACTIONS_VALID)))
        assert orjson.loads(seen.of(TRANSACTIONS_VALID)[0].value)["tx_id"] == "after-wait"
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)
