"""The bench's baselines against the real broker and Redis: one output per transaction."""

from __future__ import annotations

import pytest

from fraudstream.bench import raw_stream, send_all, take
from fraudstream.bench.baselines import COPY_TO, fused, naive, passthrough
from shared.codec import decode
from shared.events import Score, Transaction
from tests.kafka_helpers import Collector

pytestmark = pytest.mark.integration

N = 25


@pytest.mark.parametrize("baseline", [passthrough, naive, fused], ids=["passthrough", "naive", "fused"])
async def test_a_baseline_gives_one_output_per_transaction(settings, start_service, baseline):
    transactions = take(raw_stream(), N)
    await send_all(settings, transactions)
    start_service(baseline)
    async with Collector(settings, COPY_TO) as seen:
        await seen.until(lambda c: len(c.of(COPY_TO)) >= N)
        await seen.settle(0.5)
    outputs = seen.of(COPY_TO)
    assert len(outputs) == N
    if baseline is passthrough:
        assert sorted(r.value for r in outputs) == sorted(o.value for o in transactions)
    else:
        scores = [decode(r.value, Score) for r in outputs]
        assert sorted(s.tx_id for s in scores) == sorted(decode(o.value, Transaction).tx_id for o in transactions)
        assert all(0.0 <= s.score <= 1.0 for s in scores)
        if baseline is fused:  # the same reasons scoring attaches
            assert all(len(s.reasons) > 0 for s in scores)
