"""Ingest's handler with a fake of the one port it uses (claims): routing, validation,
dedup and dead letters, without a broker or Redis. The real Deduplicator is tested against
Redis in tests/integration/test_ingest.py."""

from __future__ import annotations

from datetime import timedelta

import orjson
from aiokafka import ConsumerRecord

from services.ingest.service import Ingest
from shared.boundary import Boundary
from shared.codec import decode
from shared.events import DeadLetter, Transaction, utcnow
from shared.settings import Settings
from shared.topics import LABELS_RAW, TRANSACTIONS_RAW

SETTINGS = Settings(topic_prefix="u.")


class FakeClaims:
    """The semantics of the Lua claim: the first origin owns an id; the same origin again too."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    async def claim(self, claims: list[tuple[str, str, str]]) -> list[bool]:
        return [self.owners.setdefault((kind, tx_id), origin) == origin for kind, tx_id, origin in claims]


def tx(tx_id: str, **over: object) -> bytes:
    body = dict(tx_id=tx_id, ts=(utcnow() - timedelta(minutes=1)).isoformat(), card_id="c1", merchant_id="m1",
                amount=12.5, currency="EUR", channel="pos", mcc="5411", country="FR") | over
    return orjson.dumps(body)


def records(*items: tuple[str, int, bytes | None]) -> list[ConsumerRecord]:
    return [ConsumerRecord(SETTINGS.topic(topic), 0, offset, 1_700_000_000_000, 0, b"c1", value, None, 0, 0, [])
            for topic, offset, value in items]


async def handle(ingest: Ingest, batch: list[ConsumerRecord]):
    inbound, letters = Boundary("ingest", SETTINGS, (TRANSACTIONS_RAW, LABELS_RAW), raw=True).decode(batch)
    assert letters == []  # a raw service gets every record, tombstones included
    return await ingest(inbound)


async def test_valid_duplicate_malformed_and_redelivered_records():
    ingest = Ingest(SETTINGS, FakeClaims())
    label = orjson.dumps(dict(tx_id="t1", card_id="c1", is_fraud=True, labelled_at=utcnow().isoformat()))
    first = await handle(ingest, records((TRANSACTIONS_RAW, 0, tx("t1")), (TRANSACTIONS_RAW, 1, tx("t1", amount=99.0)),
                                         (TRANSACTIONS_RAW, 2, None), (LABELS_RAW, 0, label)))
    assert [o.topic for o in first] == ["u.deadletter", "u.transactions.valid", "u.deadletter", "u.labels"]
    tombstone, valid, duplicate, learned = first
    assert decode(tombstone.value, DeadLetter).error == "malformed: empty message (no value)"
    assert decode(valid.value, Transaction).amount == 12.5 and valid.key == b"c1"
    assert valid.timestamp_ms == 1_700_000_000_000  # when it entered the system travels on
    assert decode(duplicate.value, DeadLetter).error == "duplicate: tx_id t1 was already accepted"
    assert decode(duplicate.value, DeadLetter).offset == 1
    # The same record again (a crash before the commit): published again, not refused.
    again = await handle(ingest, records((TRANSACTIONS_RAW, 0, tx("t1"))))
    assert [o.topic for o in again] == ["u.transactions.valid"]
