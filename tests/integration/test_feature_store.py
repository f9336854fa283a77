"""The Redis feature store against the reference, on a real Redis: same numbers, applied
once, one round trip per batch, a TTL on every key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from fraudstream.bench.feature_store import CountingConnection, counting_client, memory_usage, synthetic_stream
from services.features.definitions import FEATURE_NAMES, FeatureResult
from services.features.reference import ReferenceFeatures
from services.features.scripts import PRUNE_EVERY
from services.features.store import CALL_TX, FeatureStore, Watermark
from shared.events import Label, Transaction

pytestmark = pytest.mark.integration

BATCH = 250


@pytest.fixture
async def store(settings):
    client = counting_client(settings.redis_url)
    yield FeatureStore(client, settings)
    await client.aclose()


def batches(events: list[Transaction | Label]) -> list[list[Transaction] | list[Label]]:
    """Arrival order kept: runs of transactions (at most BATCH) and runs of labels."""
    out: list = []
    for event in events:
        if out and type(out[-1][0]) is type(event) and len(out[-1]) < BATCH:
            out[-1].append(event)
        else:
            out.append([event])
    return out


async def apply_all(store: FeatureStore, events) -> tuple[list[FeatureResult], list[str | None]]:
    results, reasons = [], []
    for batch in batches(events):
        if isinstance(batch[0], Transaction):
            results += await store.apply(batch)
        else:
            reasons += await store.apply_labels(batch)
    return results, reasons


async def snapshot(redis: aioredis.Redis, prefix: str) -> dict[bytes, object]:
    state: dict[bytes, object] = {}
    async for k in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = await redis.type(k)
        if kind == b"zset":
            state[k] = await redis.zrange(k, 0, -1, withscores=True)
        elif kind == b"hash":
            state[k] = await redis.hgetall(k)
        else:
            state[k] = await redis.get(k)
    return state


async def test_the_store_equals_the_reference_and_a_replay_changes_nothing(store, settings, record_property):
    events = synthetic_stream(seed=3, n=3000, cards=200, merchants=60)
    txs = [e for e in events if isinstance(e, Transaction)]
    mark = Watermark(settings.max_lateness_s)
    for tx in txs:
        assert not mark.is_too_late(tx.ts), "the stream stays within the lateness bound"
        mark.observe(tx.ts)
    assert sum(b.ts < a.ts for a, b in zip(txs, txs[1:])) > 50, "the stream has late transactions"

    ref = ReferenceFeatures()
    expected = [ref.apply(e) if isinstance(e, Transaction) else ref.apply_label(e) for e in events]
    results, reasons = await apply_all(store, events)

    assert reasons == [r for r in expected if not isinstance(r, FeatureResult)]
    want = [r for r in expected if isinstance(r, FeatureResult)]
    assert len(results) == len(want) == len(txs)
    for tx, got, ref_result in zip(txs, results, want):
        assert list(got.features) == list(FEATURE_NAMES)
        wrong = {k: (got.features[k], v) for k, v in ref_result.features.items() if got.features[k] != v}
        assert not wrong, f"{tx.tx_id}: store vs reference, to the bit: {wrong}"
        assert got.freshness_s == ref_result.freshness_s
    for name in FEATURE_NAMES:
        assert len({r.features[name] for r in results}) > 1, f"{name} never varies: the test proves nothing"
    assert any(r.features["card_seconds_since_prev"] == 3600 for r in results), "a 1 h window edge is hit"

    vectors = await store.lookup_vectors([(t.card_id, t.tx_id) for t in txs] + [("card0", "never-seen")])
    assert vectors.pop("never-seen") is None
    assert vectors == {t.tx_id: r.features for t, r in zip(txs, results)}

    before = await snapshot(store.redis, settings.redis_prefix)
    again, again_reasons = await apply_all(store, events)
    assert again == results and again_reasons == reasons
    assert await snapshot(store.redis, settings.redis_prefix) == before

    cards = sorted({t.card_id for t in txs})
    p = settings.redis_prefix
    per_card = await memory_usage(store.redis, [f"{p}:{{card:{c}}}:tx" for c in cards]) + await memory_usage(
        store.redis, [f"{p}:{{card:{c}}}:merchants" for c in cards]
    )
    record_property("bytes_per_card", round(per_card))
    print(f"\nMEMORY USAGE per card: {per_card:.0f} bytes ({len(txs) / len(cards):.1f} tx per card)")


async def test_every_key_has_a_ttl(store, settings):
    events = synthetic_stream(seed=4, n=500)
    await apply_all(store, events)
    keys = [k async for k in store.redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    kinds = {k.decode().split(":")[-1] for k in keys if b":fv:" not in k}
    assert kinds >= {"tx", "merchants", "fraud"} and any(b":fv:" in k for k in keys)
    pipe = store.redis.pipeline(transaction=False)
    for k in keys:
        pipe.ttl(k)
    assert all(ttl > 0 for ttl in await pipe.execute())


async def evalsha_calls(redis: aioredis.Redis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)


async def test_one_round_trip_per_batch_in_short_script_calls(store):
    txs = [e for e in synthetic_stream(seed=6, n=600) if isinstance(e, Transaction)][:500]
    await store.load_scripts()
    calls = await evalsha_calls(store.redis)
    sent = CountingConnection.sent
    await store.apply(txs)
    assert CountingConnection.sent - sent == 1
    # Redis serves no one else while a script runs: a batch is 500 / CALL_TX calls, not one
    assert await evalsha_calls(store.redis) - calls == 500 // CALL_TX
    labels = [Label(tx_id=t.tx_id, card_id=t.card_id, is_fraud=True, labelled_at=t.ts) for t in txs[:50]]
    sent = CountingConnection.sent
    assert await store.apply_labels(labels) == [None] * 50
    assert await store.lookup_vectors([(t.card_id, t.tx_id) for t in txs]) != {}
    assert CountingConnection.sent - sent == 2 + 2


async def test_missing_scripts_are_loaded_and_the_batch_runs(store):
    store.scripts.batch.source += "\n-- a variant this Redis has never seen\n"
    store.scripts.batch.sha = hashlib.sha1(store.scripts.batch.source.encode()).hexdigest()
    tx = next(e for e in synthetic_stream(seed=8, n=10) if isinstance(e, Transaction))
    (result,) = await store.apply([tx])
    assert result.features["card_merchant_is_new"] == 1.0


async def test_history_beyond_the_longest_window_is_pruned(store, settings):
    start = datetime(2026, 3, 1, tzinfo=UTC)

    def payment(i: int, day: float, card: str, merchant: str) -> Transaction:
        return Transaction(tx_id=f"{card}-{i}", ts=start + timedelta(days=day), card_id=card, merchant_id=merchant,
                           amount=5.0, currency="EUR", channel="pos", mcc="5411", country="FR")  # fmt: skip

    # a card prunes once PRUNE_EVERY members are out of reach
    await store.apply([payment(i, i / 8, "c", f"shop{i}") for i in range(PRUNE_EVERY)] + [payment(9, 40, "c", "shop")])
    p = settings.redis_prefix
    assert await store.redis.zrange(f"{p}:{{card:c}}:tx", 0, -1) == [b"5.0|FR|pos|4|shop|c-9"]
    assert await store.redis.zrange(f"{p}:{{card:c}}:last", 0, -1) == [b"shop"]

    txs = [payment(i, d, "c2", "m") for i, d in enumerate((0, 1, 40))]
    await store.apply(txs)
    day1, day40 = txs[1].ts.timestamp(), txs[2].ts.timestamp()
    # hourly running totals: day 0 is gone; day 1 stays, marked, as the base the totals start from
    assert await store.redis.zrange(f"{p}:{{merchant:m}}:tx", 0, -1) == [
        f"{day1 // 3600:.0f}|2|{day1!r}|pruned".encode(),
        f"{day40 // 3600:.0f}|3|{day40!r}".encode(),
    ]


async def test_a_vector_of_an_older_feature_set_keeps_its_names(store, settings):
    """As left by a deployment with another feature table, for a transaction of merchant 'm|x'."""
    p = settings.redis_prefix
    await store.redis.set(f"{p}:{{card:c}}:fv:old-tx", "0ld|1767225600.0|60.0|1,2|m|x")
    await store.redis.set(f"{p}:{{merchant:m|x}}:fv:old-tx", "7.5|3")
    await store.redis.set(f"{p}:featureset:0ld", b'{"card":["a","b"],"merchant":["c"]}')
    assert await store.lookup_vectors([("c", "old-tx")]) == {"old-tx": {"a": 1.0, "b": 2.0, "c": 3.0}}

    redelivered = Transaction(tx_id="old-tx", ts=datetime(2026, 1, 1, tzinfo=UTC), card_id="c", merchant_id="m|x",
                              amount=5.0, currency="EUR", channel="pos", mcc="5411", country="FR")  # fmt: skip
    assert await FeatureStore(store.redis, settings).apply([redelivered]) == [
        FeatureResult({"a": 1.0, "b": 2.0, "c": 3.0}, {"card": 60.0, "merchant": 7.5}, "0ld")
    ]
    label = Label(tx_id="old-tx", card_id="c", is_fraud=True, labelled_at=datetime.now(UTC))
    assert await store.apply_labels([label]) == [None]
    assert await store.redis.zrange(f"{p}:{{merchant:m|x}}:fraud", 0, -1) == [b"old-tx"], "merchant id read whole"


async def test_zero_amount_histories_equal_the_reference(store):
    """Card testing: zero-amount checks, then real amounts; every value finite and equal to the reference."""
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    base = dict(merchant_id="m-test", currency="EUR", channel="ecom", mcc="5999", country="FR")
    txs = [Transaction(tx_id=f"zt{card}-{i}", ts=t0 + timedelta(minutes=i), card_id=f"tester-{card}",
                       amount=0.0 if i < 4 else 10.0 * i, **base) for card in range(3) for i in range(7)]
    reference = ReferenceFeatures()
    expected = [reference.apply(tx) for tx in txs]
    got = await store.apply(txs)
    assert [r.features for r in got] == [r.features for r in expected]
    assert got[4].features["card_amount_ratio_30d"] == 4_000.0


async def test_a_lost_or_older_card_state_is_rebuilt_from_the_history(store, settings):
    """The state key may go (eviction, an older layout after a deployment): the windows are
    rebuilt from the history, exactly, and the features still equal the reference."""
    events = synthetic_stream(seed=9, n=1200, cards=40, merchants=20)
    ref = ReferenceFeatures()
    expected = [ref.apply(e) if isinstance(e, Transaction) else ref.apply_label(e) for e in events]
    half = len(events) // 2
    first, _ = await apply_all(store, events[:half])
    p = settings.redis_prefix
    states = sorted([k async for k in store.redis.scan_iter(match=f"{p}:{{card:*}}:windows")])
    assert len(states) > 20
    await store.redis.delete(*states[::2])
    for k in states[1::2]:
        await store.redis.set(k, b"\x92\xcb\x41\xd0\x00\x00\x00\x00\x00\x00\x90")  # msgpack [1.0 * 2**30, []]
    second, _ = await apply_all(store, events[half:])
    assert [r.features for r in first + second] == [r.features for r in expected if isinstance(r, FeatureResult)]


async def test_a_failing_batch_leaves_no_state_behind_its_history(store, settings):
    """A script error mid-batch keeps what was written before it (Redis does not roll back);
    the batch's card states are dropped with it, so a retry counts nothing twice."""
    def pay(tx_id: str, card: str, hours: float) -> Transaction:
        return Transaction(tx_id=tx_id, ts=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hours), card_id=card,
                           merchant_id="m", amount=7.0, currency="EUR", channel="pos", mcc="5411", country="FR")

    await store.apply([pay("a1", "a", 0), pay("b1", "b", 0), pay("b2", "b", 1.5)])
    p = settings.redis_prefix
    await store.redis.delete(f"{p}:{{card:b}}:tx")  # b's state now counts events its history lacks
    batch = [pay("a2", "a", 1), pay("b3", "b", 24.5)]
    with pytest.raises(ResponseError, match="card windows count events their history lacks"):
        await store.apply(batch)
    assert await store.redis.exists(f"{p}:{{card:a}}:windows", f"{p}:{{card:b}}:windows") == 0
    assert await store.redis.exists(f"{p}:{{card:a}}:fv:a2") == 1, "a2 was applied before the error"
    retried = await store.apply(batch)
    later = await store.apply([pay("a3", "a", 1.5)])
    assert retried[0].features["card_tx_count_24h"] == 1, "what a2 got the first time"
    assert (later[0].features["card_tx_count_1h"], later[0].features["card_tx_count_24h"]) == (1, 2), "a2 once"
    assert retried[1].features["card_tx_count_24h"] == 0, "b's lost history: rebuilt empty, not negative"
