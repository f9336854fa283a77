"""Two dashboard replicas in one consumer group: both keep serving, and every count survives.

A second replica joining splits the input partitions (a rebalance while scores flow); the
first one leaving hands everything, the tables' state included, to the second. Through
both, the page shows every score once: none lost, none counted twice.
"""

from __future__ import annotations

import asyncio

import pytest

from services.dashboard import service
from shared.topics import SCORES
from tests.integration.test_dashboard import dashboard_settings, scores_of, wait_summary
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration
N = 1000


def scores_seen(count: int):
    return lambda summary: summary["totals"]["scores"] == count


def scores_owned(summary: dict, settings) -> list[str]:
    """The partitions of ``scores`` that the replica which served ``summary`` consumes (2 in all)."""
    return [tp for tp in summary["owns"] if tp.rsplit(":", 1)[0] == settings.topic(SCORES)]


def scores_at_least(count: int):
    return lambda summary: summary["totals"]["scores"] >= count


async def test_rebalance_keeps_counts_and_both_replicas_serve(settings, start_service):
    first, second = dashboard_settings(settings), dashboard_settings(settings)
    stop_first = asyncio.Event()
    first_task = asyncio.create_task(service.run(first, stop_first))
    try:
        await produce(first, SCORES, scores_of(0, 300, N))
        await wait_summary(first, scores_seen(300))

        # The second replica joins while scores keep coming: the group rebalances mid-stream.
        start_service(service.run, second)
        for start in range(300, 600, 50):
            await produce(first, SCORES, scores_of(start, 50, N))
        split = [await wait_summary(s, lambda x: scores_seen(600)(x) and len(scores_owned(x, s)) == 1)
                 for s in (first, second)]
        owned = [set(summary["owns"]) for summary in split]
        assert not owned[0] & owned[1], f"a partition consumed by both replicas: {owned}"
    finally:
        stop_first.set()
        await asyncio.wait_for(first_task, timeout=30)

    # The first replica is gone: the second owns everything and recovers the counts.
    await produce(second, SCORES, scores_of(600, 100, N))
    after = await wait_summary(second, scores_seen(700))
    assert after["source"] == "owner"
    assert sum(after["score_histogram"]) <= 700 and after["totals"]["scores"] == 700
    # Nothing counted twice shows up later either: a replayed batch would push the total past 700.
    with pytest.raises(AssertionError, match="no summary satisfied"):
        await wait_summary(second, scores_at_least(701), timeout_s=5)
