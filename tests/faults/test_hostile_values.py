"""A value the fuzzer found that a valid transaction can carry and features could not survive.

Zero amounts are valid (account verifications; card testers' favourite), so a card's
30-day mean amount can be 0; ``card_amount_ratio_30d`` was then ``amount / 0``: inf (nan
for 0/0), ``EnrichedTransaction`` refused the non-finite value inside the features
handler, the non-transient error ended the process and its restart met the same batch
again. Main now floors the mean at one cent; this keeps it so: every transaction enriched
with a finite ratio and the service still running.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from services.features import service as features
from shared.codec import decode, encode
from shared.events import EnrichedTransaction, Transaction, utcnow
from shared.topics import TRANSACTIONS_ENRICHED, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def payment(i: int, amount: float) -> Transaction:
    return Transaction(tx_id=f"zero-{i}", ts=utcnow() - timedelta(minutes=10) + timedelta(seconds=i),
                       card_id="card-tester", merchant_id="m1", amount=amount, currency="EUR", channel="ecom",
                       mcc="5411", country="FR")


async def test_a_card_whose_history_is_zero_amounts_is_enriched_and_features_keeps_running(settings):
    txs = [payment(0, 0.0), payment(1, 0.0), payment(2, 25.0)]
    await produce(settings, TRANSACTIONS_VALID, [(tx.card_id.encode(), encode(tx)) for tx in txs])
    stop = asyncio.Event()
    task = asyncio.create_task(features.run(settings, stop))
    try:
        async with Collector(settings, TRANSACTIONS_ENRICHED) as seen:
            await seen.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) >= len(txs) or task.done(), timeout_s=30)
        assert not task.done(), f"features ended: {task.exception()!r}"
        ratios = [decode(r.value, EnrichedTransaction).features["card_amount_ratio_30d"]
                  for r in seen.of(TRANSACTIONS_ENRICHED)]
        assert len(ratios) == len(txs)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
