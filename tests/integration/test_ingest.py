"""ingest against the real broker and Redis: exactly which events come out where, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.ingest import service as ingest
from shared.codec import decode
from shared.events import DeadLetter, Label, Transaction
from shared.topics import DEADLETTER, LABELS, LABELS_RAW, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def tx(tx_id: str, **over) -> dict:
    base = dict(tx_id=tx_id, ts=(NOW - timedelta(minutes=5)).isoformat(), card_id="card-1", merchant_id="m-1",
                amount=42.5, currency="eur", channel="pos", mcc="5411", country="fr")
    return base | over


def raw(obj) -> bytes:
    return orjson.dumps(obj)


GOOD = [raw(tx("good-1")), raw(tx("good-2", card_id="card-2", ts=(NOW - timedelta(hours=1)).isoformat())),
        raw(tx("zero", card_id="card-3", amount=0))]  # a zero-amount check is real traffic
BAD = {
    b"not json at all": "malformed: not JSON",
    b"\xff\xfe{\x00": "malformed: not UTF-8",
    b"[1, 2, 3]": "malformed: not a JSON object (got list)",
    raw(tx("missing") | {"amount": None} ): "amount: Input should be a valid number",
    raw({k: v for k, v in tx("no-card").items() if k != "card_id"}): "card_id: Field required",
    raw(tx("extra", loyalty_points=3)): "loyalty_points: Extra inputs are not permitted",
    raw(tx("wrong-type", amount="12.5")): "amount: Input should be a valid number",
    raw(tx("epoch", ts=1767225600)): "ts: Value error, must be an ISO 8601 date-time string, got int",
    raw(tx("negative", amount=-3)): "amount: Input should be greater than or equal to 0",
    b'{"tx_id":"nan","amount":NaN}': "malformed: not JSON",
    raw(tx("huge", amount=5e12)): "out of range: amount 5000000000000.0 is above the ceiling",
    raw(tx("currency", currency="XYZ")): "unknown ISO 4217 currency 'XYZ'",
    raw(tx("naive", ts="2026-01-01T10:00:00")): "ts: Input should have timezone info",
    raw(tx("future", ts=(NOW + timedelta(days=2)).isoformat())): "out of range: ts",
    b"{" + b'"pad":"' + b"x" * 70_000 + b'"}': "oversized: 70010 bytes is above the limit of 65536",
}


async def test_good_bad_and_duplicate_events_land_exactly_where_they_should(settings, start_service):
    duplicate = raw(tx("good-1", amount=99.0))  # the same tx_id re-sent by the producer
    label = raw(dict(tx_id="good-1", card_id="card-1", is_fraud=True, labelled_at=NOW.isoformat(), source="chargeback"))
    bad_label = raw(dict(tx_id="x", card_id="card-1", is_fraud="yes", labelled_at=NOW.isoformat()))
    await produce(settings, TRANSACTIONS_RAW, [(b"k", v) for v in [*GOOD, *BAD, duplicate]])
    await produce(settings, LABELS_RAW, [(None, label), (None, bad_label), (None, label)])

    start_service(ingest.run)
    expected_dead = len(BAD) + 1 + 1 + 1  # bad transactions, the duplicate, the bad label, the re-sent label
    async with Collector(settings, TRANSACTIONS_VALID, LABELS, DEADLETTER) as seen:
        await seen.until(
            lambda c: len(c.of(DEADLETTER)) >= expected_dead and len(c.of(TRANSACTIONS_VALID)) >= len(GOOD))
        await seen.settle()

    valid = [decode(r.value, Transaction) for r in seen.of(TRANSACTIONS_VALID)]
    assert sorted(t.tx_id for t in valid) == ["good-1", "good-2", "zero"]
    first = next(t for t in valid if t.tx_id == "good-1")
    assert (first.currency, first.country, first.amount) == ("EUR", "FR", 42.5)  # the first copy won
    assert {r.key for r in seen.of(TRANSACTIONS_VALID)} == {b"card-1", b"card-2", b"card-3"}  # keyed by card

    labels = [decode(r.value, Label) for r in seen.of(LABELS)]
    assert [(lb.tx_id, lb.is_fraud) for lb in labels] == [("good-1", True)]

    letters = [decode(r.value, DeadLetter) for r in seen.of(DEADLETTER)]
    assert len(letters) == expected_dead
    by_payload = {dl.payload: dl for dl in letters}
    for payload, reason in BAD.items():
        assert reason in by_payload[payload].error, (payload[:40], by_payload[payload].error)
        assert by_payload[payload].topic == settings.topic(TRANSACTIONS_RAW)
        assert by_payload[payload].service == "ingest"
    assert by_payload[duplicate].error == "duplicate: tx_id good-1 was already accepted"
    assert "is_fraud: Input should be a valid boolean" in by_payload[bad_label].error
    assert sorted(dl.offset for dl in letters if dl.topic == settings.topic(TRANSACTIONS_RAW)) == list(
        range(len(GOOD), len(GOOD) + len(BAD) + 1)
    )


async def test_a_redelivered_record_is_published_again_not_dropped(settings, redis_client):
    """A crash after the dedup claim but before the commit must not lose the event."""
    from aiokafka.structs import ConsumerRecord

    from services.ingest.dedup import Deduplicator
    from services.ingest.service import Ingest
    from shared.boundary import Boundary

    handler = Ingest(settings, Deduplicator(redis_client, settings))
    record = ConsumerRecord(settings.topic(TRANSACTIONS_RAW), 0, 7, 0, 0, b"card-1", raw(tx("again")), None, 0, 0, [])
    resent = ConsumerRecord(settings.topic(TRANSACTIONS_RAW), 1, 3, 0, 0, b"card-1", raw(tx("again")), None, 0, 0, [])
    boundary = Boundary("ingest", settings, (TRANSACTIONS_RAW,), raw=True)
    first, redelivered, duplicate = [await handler(boundary.decode([r])[0]) for r in (record, record, resent)]
    assert [o.topic for o in first] == [o.topic for o in redelivered] == [settings.topic(TRANSACTIONS_VALID)]
    assert [o.topic for o in duplicate] == [settings.topic(DEADLETTER)]
