"""Labels wait for their vector: a label that reaches the learner before its transaction's
features exist is learned, once, when the transaction arrives; one whose transaction never
comes is dead-lettered when its wait is over. Real broker, Redis, features and learner."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from services.features import service as features
from services.learner import service as learner
from shared.codec import decode, encode
from shared.events import DeadLetter, Label, ModelVersionPublished, Transaction, utcnow
from shared.topics import DEADLETTER, LABELS, MODEL_VERSIONS, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

N = 40


async def _equals(reply: Awaitable[int], expected: int) -> bool:
    return await reply == expected


def transaction(i: int) -> Transaction:
    return Transaction(tx_id=f"tx-{i}", ts=utcnow() - timedelta(minutes=10) + timedelta(seconds=i),
                       card_id=f"card-{i % 7}", merchant_id=f"m{i % 3}", amount=10.0 + i, currency="EUR",
                       channel="pos", mcc="5411", country="FR")


def label(i: int) -> Label:
    return Label(tx_id=f"tx-{i}", card_id=f"card-{i % 7}", is_fraud=i % 4 == 0, labelled_at=utcnow())


async def until(seen: Collector, check: Callable[[], Awaitable[bool]], failing: str, timeout_s: float = 30) -> None:
    """Poll Redis through ``check`` until it holds, reading the broker in between."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, failing
        await seen.settle(0.1)


def versions(c: Collector) -> list[ModelVersionPublished]:
    return [decode(r.value, ModelVersionPublished) for r in c.of(MODEL_VERSIONS)]


async def test_labels_published_before_their_transactions_are_all_learned_once(settings, redis_client,
                                                                                  start_service):
    s = settings.model_copy(update={"publish_every_labels": N, "genuine_sample_rate": 1.0})
    index = f"{s.redis_prefix}:learner:waiting"
    start_service(learner.run, s)
    async with Collector(s, MODEL_VERSIONS, DEADLETTER) as seen:
        await produce(s, LABELS, [(f"card-{i % 7}".encode(), encode(label(i))) for i in range(N)])
        # every label is held: none has a vector yet (features is not running)
        await until(seen, lambda: _equals(redis_client.zcard(index), N), f"not all {N} labels held")
        assert versions(seen) == [] and seen.of(DEADLETTER) == []

        start_service(features.run, s)  # the transactions arrive late
        await produce(s, TRANSACTIONS_VALID, [(f"card-{i % 7}".encode(), encode(transaction(i))) for i in range(N)])
        await seen.until(lambda c: len(versions(c)) >= 1)
        await seen.settle(1.0)
    (published,) = versions(seen)
    assert published.training_window.labels_seen == N  # each learned exactly once
    assert published.training_window.frauds_seen == N // 4
    assert seen.of(DEADLETTER) == []
    # forgotten once the snapshot holding them was acknowledged
    async with Collector(s, MODEL_VERSIONS) as idle:
        await until(idle, lambda: _equals(redis_client.zcard(index), 0), "learned labels still kept as waiting")
    assert [k async for k in redis_client.scan_iter(match=f"{s.redis_prefix}:*learner:waiting")] == []


async def test_a_label_whose_transaction_never_comes_is_dead_lettered_when_its_wait_is_over(settings, redis_client,
                                                                                            start_service):
    s = settings.model_copy(update={"label_wait_s": 1.0})
    start_service(learner.run, s)
    await produce(s, LABELS, [(b"card-1", encode(label(1)))])
    async with Collector(s, DEADLETTER, LABELS) as seen:
        await until(seen, lambda: _equals(redis_client.zcard(f"{s.redis_prefix}:learner:waiting"), 1),
                    "the label was never held")
        held = time.monotonic()
        await seen.until(lambda _: time.monotonic() > held + 1.5)  # past the wait
        await produce(s, LABELS, [(b"card-2", encode(label(2)))])  # a later batch sees the deadline
        await seen.until(lambda c: len(c.of(DEADLETTER)) >= 1)
        await seen.settle(0.5)
    letters = [decode(r.value, DeadLetter) for r in seen.of(DEADLETTER)]
    original = seen.of(LABELS)[0]
    assert [(d.service, d.topic, d.partition, d.offset, d.payload) for d in letters][:1] == [
        ("learner", original.topic, original.partition, original.offset, original.value)]
    assert letters[0].error == "unknown or expired tx_id: no stored features for tx-1 on card card-1 after waiting 1 s"


async def test_a_label_whose_wait_ends_while_traffic_is_quiet_is_dead_lettered_all_the_same(settings, start_service):
    # Nothing arrives after the label: its deadline must be seen by the idle loop, not wait
    # for the next record on one of the learner's inputs.
    s = settings.model_copy(update={"label_wait_s": 1.0})
    start_service(learner.run, s)
    await produce(s, LABELS, [(b"card-3", encode(label(3)))])
    async with Collector(s, DEADLETTER) as seen:
        await seen.until(lambda c: len(c.of(DEADLETTER)) >= 1, timeout_s=20)
    [letter] = [decode(r.value, DeadLetter) for r in seen.of(DEADLETTER)]
    assert (letter.service, decode(letter.payload, Label).tx_id) == ("learner", "tx-3")
