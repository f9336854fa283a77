"""Dead letters for ops: read them all, pick some, and send their original bytes back.

A dead letter is named by where it sits on the ``deadletter`` topic, ``PARTITION:OFFSET``,
and its *reason* is the kind of refusal, the error's text before the first colon (the same
label as the ``fraudstream_deadletter_total`` metric):

>>> reason_of("out of range: amount 2e6 is above the ceiling 1e+06")
'out of range'

Redriving re-publishes a letter's original key and bytes to the topic it was refused
from, e.g. after raising a limit; the pipeline is idempotent by ``tx_id``, so a letter
redriven twice (or whose transaction got through since) is not counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from shared.codec import DecodeError, decode
from shared.events import DeadLetter
from shared.kafka import Out, Sender, make_consumer, make_producer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import DEADLETTER


def reason_of(error: str) -> str:
    return error.split(":", 1)[0].strip()


@dataclass(frozen=True)
class Letter:
    """A dead letter and its place on the ``deadletter`` topic."""

    partition: int
    offset: int
    event: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return reason_of(self.event.error)


async def read_all(settings: Settings, timeout_s: float = 30.0) -> tuple[list[Letter], int]:
    """Every dead letter now on the topic, oldest first per partition, and how many records
    there could not be read as a DeadLetter.

    Reads until the end offsets taken at the start are reached *and* a poll comes back
    empty: Tansu reports a partition's last batch, not its end, as the end offset.
    """
    consumer = make_consumer(settings, DEADLETTER, group=None, auto_offset_reset="earliest")
    wait = FetchWait("deadletters", consumer, settings.fetch_max_wait_ms)
    letters, unreadable = [], 0
    try:
        await consumer.start()
        topic = settings.topic(DEADLETTER)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            polled = await wait.poll(timeout_ms=1000)
            for record in (r for batch in polled.values() for r in batch):
                try:
                    letters.append(Letter(record.partition, record.offset, decode(record.value, DeadLetter)))
                except DecodeError:
                    unreadable += 1
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not polled and not behind:
                return letters, unreadable
        raise TimeoutError(f"the deadletter topic was not read to its end within {timeout_s:.0f}s")
    finally:
        await consumer.stop()


def select(letters: list[Letter], reasons: Sequence[str] = (), ids: Sequence[str] = (),
           topic: str | None = None, settings: Settings | None = None) -> list[Letter]:
    """The letters matching every given criterion: any of ``reasons`` (case-insensitive),
    any of ``ids``, refused from logical ``topic``."""
    wanted_reasons = {r.strip().lower() for r in reasons}
    wanted_topic = None if topic is None else (settings or Settings()).topic(topic)
    return [
        letter for letter in letters
        if (not wanted_reasons or letter.reason.lower() in wanted_reasons)
        and (not ids or letter.id in ids)
        and (wanted_topic is None or letter.event.topic == wanted_topic)
    ]


async def redrive(settings: Settings, letters: list[Letter]) -> int:
    """Publish each letter's original key and bytes to the topic it came from; wait for the acks."""
    dead = settings.topic(DEADLETTER)
    if any(letter.event.topic == dead for letter in letters):
        raise ValueError("a letter refused from the deadletter topic itself cannot be redriven")
    if not letters:
        return 0
    producer = make_producer(settings)
    try:
        await producer.start()
        return await Sender(producer).send(Out(letter.event.topic, letter.event.key, letter.event.payload)
                                           for letter in letters)
    finally:
        await producer.stop()
