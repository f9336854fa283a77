"""A batch retried after a transient Redis error must be judged as on its first try.

Found by the fault suite (``redis kill -9 under load``: good transactions dead-lettered as
"too late"): features judged lateness and advanced the partition's watermark while the
batch was dispatched, before the store was written; when the store call failed (Redis
away) the runner retried ``handler(batch)`` and the second dispatch judged every
transaction against a watermark that already held the batch's own later ones, so a batch
spanning more than ``max_lateness_s`` of event time dead-lettered its earlier
transactions. Per-card lateness on main no longer does; this keeps it so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import pytest

from services.features import service as features
from shared.codec import decode, encode
from shared.events import DeadLetter, Transaction, utcnow
from shared.topics import DEADLETTER, TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def test_a_batch_retried_after_redis_came_back_enriches_what_its_first_try_accepted(settings, tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    s = settings.model_copy(update={"redis_url": server.url})
    start = utcnow() - timedelta(hours=10)
    txs = [Transaction(tx_id=f"backlog-{i}", ts=start + timedelta(hours=2 * i), card_id="card-backlog",
                       merchant_id="m1", amount=10.0 + i, currency="EUR", channel="pos", mcc="5411", country="FR")
           for i in range(3)]  # one batch, four hours of event time
    server.stop()
    await produce(s, TRANSACTIONS_VALID, [(tx.card_id.encode(), encode(tx)) for tx in txs])
    stop = asyncio.Event()
    task = asyncio.create_task(features.run(s, stop))
    try:
        async with Collector(s, TRANSACTIONS_ENRICHED, DEADLETTER) as seen:
            away_until = time.monotonic() + 4.0  # the first try meets no Redis and is retried
            await seen.until(lambda _: time.monotonic() > away_until, timeout_s=10)
            server.start()
            await seen.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) + len(c.of(DEADLETTER)) >= len(txs),
                             timeout_s=40)
        letters = [decode(r.value, DeadLetter).error for r in seen.of(DEADLETTER)]
        assert letters == []
        assert len(seen.of(TRANSACTIONS_ENRICHED)) == len(txs)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        server.stop()
