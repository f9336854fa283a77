"""Every service, on the real broker and Redis: a tombstone (no value) and an empty record on
each topic it consumes are dead-lettered with where they came from and why, and the
service goes on to handle the good record behind them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from services.features import service as features
from services.ingest import service as ingest
from services.learner import service as learner
from services.monitor import service as monitor
from services.scoring import service as scoring
from shared import metrics
from shared.codec import decode, encode
from shared.events import (
    Alert,
    DeadLetter,
    EnrichedTransaction,
    Label,
    ModelVersionPublished,
    Score,
    Transaction,
    utcnow,
)
from shared.topics import (
    DEADLETTER,
    LABELS,
    LABELS_RAW,
    MODEL_VERSIONS,
    SCORES,
    TOPICS,
    TRANSACTIONS_ENRICHED,
    TRANSACTIONS_RAW,
    TRANSACTIONS_VALID,
)
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

BAD = [(b"card-1", None), (b"card-1", b"")]
REASONS = {None: "malformed: empty message (no value)", b"": "malformed: empty message (zero bytes)"}


def transaction(tx_id: str = "good-1") -> Transaction:
    return Transaction(tx_id=tx_id, ts=utcnow() - timedelta(minutes=1), card_id="card-1", merchant_id="m1",
                       amount=12.5, currency="EUR", channel="pos", mcc="5411", country="FR")


def enriched(tx_id: str = "good-1") -> EnrichedTransaction:
    return EnrichedTransaction(transaction=transaction(tx_id), features={"amount": 12.5}, feature_set_version="t")


def label(tx_id: str = "good-1") -> Label:
    return Label(tx_id=tx_id, card_id="card-1", is_fraud=True, labelled_at=utcnow())


@dataclass
class Case:
    service: object
    good: list[tuple[str, bytes]]
    """Produced after the bad records: (topic, value)."""
    done: Callable[[Collector], bool]
    watch: tuple[str, ...] = ()
    also: tuple[object, ...] = ()
    """Services that run beside it (the learner needs features to store vectors)."""
    settings: dict = field(default_factory=dict)


def unmatched_by_monitor() -> float:
    return metrics.LABELS_UNMATCHED.labels("monitor")._value.get()


CASES = {
    "ingest": Case(ingest, [(TRANSACTIONS_RAW, encode(transaction()))],
                   lambda c: len(c.of(TRANSACTIONS_VALID)) == 1, watch=(TRANSACTIONS_VALID,)),
    "features": Case(features, [(TRANSACTIONS_VALID, encode(transaction()))],
                     lambda c: len(c.of(TRANSACTIONS_ENRICHED)) == 1, watch=(TRANSACTIONS_ENRICHED,)),
    "scoring": Case(scoring, [(TRANSACTIONS_ENRICHED, encode(enriched()))],
                    lambda c: len(c.of(SCORES)) == 1, watch=(SCORES,)),
    # features stores the vector the label joins; one label learned publishes a version
    "learner": Case(learner, [(TRANSACTIONS_VALID, encode(transaction())), (LABELS, encode(label()))],
                    lambda c: any(decode(r.value, ModelVersionPublished).status == "champion"
                                  for r in c.of(MODEL_VERSIONS) if r.value),
                    watch=(MODEL_VERSIONS,), also=(features,), settings={"publish_every_labels": 1}),
}


def letters_of(name: str, c: Collector) -> list[DeadLetter]:
    return [d for r in c.of(DEADLETTER) if (d := decode(r.value, DeadLetter)).service == name]


async def dead_letters_then_goes_on(name: str, case: Case, settings, start_service) -> list[DeadLetter]:
    settings = settings.model_copy(update=case.settings)
    spec = case.service.SPEC
    for topic in spec.inputs + spec.follows:
        await produce(settings, topic, BAD)
    for other in case.also:
        start_service(other.run, settings)
    start_service(case.service.run, settings)
    async with Collector(settings, DEADLETTER, *spec.inputs, *case.watch) as seen:
        for topic, value in case.good:
            if topic == LABELS and case.also:  # after the vector it joins is stored
                await seen.until(lambda c: len(c.of(TRANSACTIONS_ENRICHED)) >= len(BAD) + 1)
            await produce(settings, topic, [(b"card-1", value)])
        await seen.until(case.done)
        await seen.until(lambda c: len(letters_of(name, c)) >= len(BAD) * len(spec.inputs))
        await seen.settle(0.3)
    letters = letters_of(name, seen)
    bad = {(r.topic, r.partition, r.offset): r.value for t in spec.inputs for r in seen.of(t) if not r.value}
    assert {(d.topic, d.partition, d.offset) for d in letters} == set(bad)  # each once, nothing else
    assert all(d.error == REASONS[bad[(d.topic, d.partition, d.offset)]] for d in letters)
    return letters


@pytest.mark.parametrize("name", sorted(CASES))
async def test_tombstones_and_empty_records_are_dead_lettered_and_the_service_goes_on(name, settings, start_service):
    letters = await dead_letters_then_goes_on(name, CASES[name], settings, start_service)
    assert len(letters) == len(BAD) * len(CASES[name].service.SPEC.inputs)


async def test_the_monitor_dead_letters_them_and_goes_on(settings, start_service):
    before = unmatched_by_monitor()
    case = Case(monitor, [(LABELS, encode(label("never-scored")))], lambda c: unmatched_by_monitor() > before)
    letters = await dead_letters_then_goes_on("monitor", case, settings, start_service)
    assert {d.topic for d in letters} == {settings.topic(t) for t in monitor.INPUTS}


def test_raw_topics_are_ingest_s_alone():
    assert ingest.SPEC.raw and not any(s.SPEC.raw for s in (features, scoring, learner, monitor))
    assert set(ingest.SPEC.inputs) == {TRANSACTIONS_RAW, LABELS_RAW}


async def test_what_the_monitor_and_learner_read_as_views_is_refused_like_a_full_decode(settings, start_service):
    """The inputs read as views (only the fields used): a truncated record and another topic's
    event (an alert has every field of a score) are dead-lettered by each, with the reason."""
    score = Score(tx_id="good-1", card_id="card-1", ts=utcnow(), score=0.9, decision="decline", model_version="v1")
    alert = Alert(tx_id="good-1", card_id="card-1", merchant_id="m1", ts=utcnow(), amount=12.5, currency="EUR",
                  country="FR", channel="pos", score=0.9, severity="high", decision="decline", model_version="v1")
    bad = {TRANSACTIONS_ENRICHED: [encode(enriched())[:-9], encode(score)], SCORES: [encode(score)[:40], encode(alert)]}
    views = {(name, topic) for name, s in (("monitor", monitor), ("learner", learner)) for topic in s.SPEC.views}
    assert views == {("monitor", TRANSACTIONS_ENRICHED), ("monitor", SCORES), ("learner", TRANSACTIONS_ENRICHED)}
    for topic, values in bad.items():
        await produce(settings, topic, [(b"card-1", v) for v in values])
    start_service(monitor.run, settings)
    start_service(learner.run, settings)
    async with Collector(settings, DEADLETTER) as seen:
        await seen.until(lambda c: len(letters_of("monitor", c)) == 4 and len(letters_of("learner", c)) == 2)
        await seen.settle(0.3)
    for name, topics in (("monitor", (TRANSACTIONS_ENRICHED, SCORES)), ("learner", (TRANSACTIONS_ENRICHED,))):
        letters = {(d.topic, d.payload): d.error for d in letters_of(name, seen)}
        expected = {}
        for topic in topics:
            truncated, foreign = bad[topic]
            event = TOPICS[topic].event.__name__
            expected[(settings.topic(topic), truncated)] = "malformed: not JSON"
            expected[(settings.topic(topic), foreign)] = f"malformed: not a valid {event}"
        assert letters.keys() == expected.keys()
        assert all(letters[k].startswith(why) for k, why in expected.items()), letters
