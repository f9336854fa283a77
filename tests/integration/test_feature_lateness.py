"""Lateness follows the card, and merchant windows under partition skew, on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.features.definitions import DAY, HOUR, FeatureResult, Refused, hour_of
from services.features.reference import ReferenceFeatures
from services.features.store import FeatureStore
from shared.events import Transaction

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 2, tzinfo=UTC)


def tx(tx_id: str, at: float, card: str, merchant: str = "m", amount: float = 10.0) -> Transaction:
    return Transaction(tx_id=tx_id, ts=T0 + timedelta(seconds=at), card_id=card, merchant_id=merchant,
                       amount=amount, currency="EUR", channel="pos", mcc="5411", country="FR")  # fmt: skip


@pytest.fixture
async def store(redis_client, settings):
    return FeatureStore(redis_client, settings)


async def test_a_far_ahead_clock_makes_only_its_own_card_late(store, settings):
    lateness = settings.max_lateness_s
    ahead = tx("ahead", 30 * DAY, card="broken-clock")
    others = [tx(f"o{i}", i * 600.0, card=f"c{i % 3}") for i in range(10)]
    behind = tx("behind", 30 * DAY - lateness - 1, card="broken-clock")
    within = tx("within", 30 * DAY - lateness, card="broken-clock")
    events = [ahead, *others, behind, within]
    got = await store.apply(events)

    assert all(isinstance(r, FeatureResult) for r in got[1:-2]), "other cards are never late"
    assert got[-2] == Refused(f"too late: {lateness + 1:.0f}s behind the card's newest event, limit {lateness:.0f}s")
    assert isinstance(got[-1], FeatureResult) and got[-1].features["card_tx_count_24h"] == 0
    assert await store.apply(events) == got, "a redelivery gets the same answers, refusals included"
    ref = ReferenceFeatures(max_lateness_s=lateness)
    assert [ref.apply(e) for e in events] == got


def arrival_with_lag(lag_s: float) -> tuple[list[Transaction], set[str]]:
    """Two partitions' cards at the same merchants for 3 days, one lagging ``lag_s`` behind
    the other in arrival (a backlog after a fault): events arrive by ts + lag."""
    events, lagging = [], set()
    for i in range(600):
        card = f"c{i % 20}"
        t = i * 431.0 + (i % 7) * 13
        events.append((t + (lag_s if i % 20 >= 10 else 0), tx(f"t{i}", t, card, f"m{i % 3}", 5.0 + i % 11)))
        if i % 20 >= 10:
            lagging.add(f"t{i}")
    return [e for _, e in sorted(events, key=lambda p: p[0])], lagging


async def test_merchant_windows_under_partition_skew(store):
    """Arrival order with one partition 30 h behind: the store equals the arrival-order
    reference to the bit; against event-time truth the lagging partition's transactions
    are exact and the leading ones undercount by exactly what has not arrived yet."""
    arrived, lagging = arrival_with_lag(30 * HOUR)
    got = await store.apply(arrived)
    ref = ReferenceFeatures()
    assert [r.features for r in got] == [ref.apply(e).features for e in arrived]

    position = {e.tx_id: i for i, e in enumerate(arrived)}
    undercounts = []
    for i, (e, result) in enumerate(zip(arrived, got)):
        h = hour_of(e.ts.timestamp())
        in_window = [o for o in arrived if o.merchant_id == e.merchant_id and h - 24 <= hour_of(o.ts.timestamp()) < h]
        not_yet = sum(position[o.tx_id] > i for o in in_window)
        assert result.features["merchant_tx_count_24h"] == len(in_window) - not_yet
        if e.tx_id in lagging:
            assert not_yet == 0, "the lagging partition sees everything before it"
        undercounts.append(not_yet)
    assert max(undercounts) > 20, "the skew is visible: the test proves something"


async def test_merchant_windows_far_behind_undercount_never_overcount(store):
    # one transaction a day at merchant m for 50 days, each from its own card
    await store.apply([tx(f"d{d}", d * DAY + 60, card=f"k{d}") for d in range(50)])
    # 29 days behind the merchant's newest, within the skew bound: exact (the prefix sums
    # kept 1 day of skew and counted 20 here, the merchant's whole life)
    (within,) = await store.apply([tx("x20", 20 * DAY + 120, card="fresh20")])
    assert within.features["merchant_tx_count_7d"] == 7
    # 35 days behind, beyond the bound: the window reaches into dropped hours and counts
    # only those kept, days 12 and 13 of days 7 to 13
    (beyond,) = await store.apply([tx("x14", 14 * DAY + 120, card="fresh14")])
    assert beyond.features["merchant_tx_count_7d"] == 2
