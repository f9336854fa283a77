"""Labels before the transactions produced after them (``shared.runner.take_first``).

Kafka orders records within a partition only: a consumer of labels and transactions can be
handed a transaction before a label produced earlier. On the real broker: labels, then
transactions, are produced; a poll hands over only the transactions (as a fetch that
brought the one partition's records first would); ``take_first`` adds the labels the
broker held, so the features service applies them before the transactions.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from shared.kafka import make_consumer, make_producer
from shared.runner import take_first
from shared.topics import LABELS, TRANSACTIONS_VALID

pytestmark = pytest.mark.integration


async def test_a_batch_of_transactions_takes_the_labels_the_broker_held_before_them(settings):
    labels, txs = TopicPartition(settings.topic(LABELS), 0), TopicPartition(settings.topic(TRANSACTIONS_VALID), 0)
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(3):
            await (await producer.send(labels.topic, value=b"label-%d" % i, partition=0))
        for i in range(4):
            await (await producer.send(txs.topic, value=b"tx-%d" % i, partition=0))
    finally:
        await producer.stop()

    consumer = make_consumer(settings, group=None)
    await consumer.start()
    try:
        consumer.assign([labels, txs])
        polled: dict[TopicPartition, list] = {}
        async with asyncio.timeout(20):  # poll with a deadline until the transactions came
            while len(polled.get(txs, [])) < 4:
                for tp, records in (await consumer.getmany(txs, timeout_ms=200)).items():
                    polled.setdefault(tp, []).extend(records)
        assert list(polled) == [txs]  # the labels were not handed over with them

        # what only holds the first topic, or without a first topic: as polled
        assert await take_first(consumer, frozenset(), polled, 100) == polled
        only_labels = {labels: []}
        assert await take_first(consumer, frozenset({labels.topic}), only_labels, 100) is only_labels

        batch = await take_first(consumer, frozenset({labels.topic}), polled, 100)
        assert {tp: [r.value for r in rs] for tp, rs in batch.items()} == {
            txs: [b"tx-0", b"tx-1", b"tx-2", b"tx-3"], labels: [b"label-0", b"label-1", b"label-2"]}
        # caught up: the next batch of transactions asks for nothing more
        assert await take_first(consumer, frozenset({labels.topic}), {txs: []}, 100) == {txs: []}
    finally:
        await consumer.stop()
