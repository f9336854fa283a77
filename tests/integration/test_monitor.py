"""monitor against the real broker, and its handler on in-memory records.

Everything a test publishes goes under one key, so it lands on one partition and the
monitor reads it in order: which events form the reference window is then exact.
"""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from services.monitor import service as monitor
from services.monitor.detectors import MonitorConfig
from shared import metrics
from shared.boundary import Boundary
from shared.codec import decode, encode
from shared.events import (
    DeadLetter,
    DriftDetected,
    EnrichedTransaction,
    Label,
    ModelVersionPublished,
    RetrainRequested,
    Score,
    Transaction,
    Window,
)
from shared.settings import Settings
from shared.topics import (
    DEADLETTER,
    DRIFT_EVENTS,
    LABELS,
    MODEL_RETRAIN,
    MODEL_VERSIONS,
    SCORES,
    TRANSACTIONS_ENRICHED,
)
from tests.kafka_helpers import Collector, produce

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(seconds=0.1)
"""Event time between transactions: 3,000 of them span 300 s, inside one 600 s cool-down."""
WINDOW = 500
"""Drift windows of 500 events: PSI's noise floor is then ≈ 9 × 2/500 = 0.036 (0.2 is far)."""
SHIFT_AT = 1_500
KEY = b"card-1"


def small(settings: Settings) -> MonitorConfig:
    return MonitorConfig.from_settings(settings, drift_window=WINDOW, drift_evaluate_every=100)


def enriched(i: int, amount: float, count: float) -> EnrichedTransaction:
    tx = Transaction(tx_id=f"tx-{i}", ts=T0 + i * STEP, card_id="card-1", merchant_id="m-1", amount=round(amount, 2),
                     currency="EUR", channel="pos", mcc="5411", country="FR")
    return EnrichedTransaction(transaction=tx, features={"amount": amount, "card_tx_count_24h": count},
                               feature_set_version="test")


def scored(i: int, score: float, version: str = "v1") -> Score:
    decision = "decline" if score >= 0.9 else "review" if score >= 0.5 else "approve"
    return Score(tx_id=f"tx-{i}", card_id="card-1", ts=T0 + i * STEP, score=score, decision=decision,
                 model_version=version)


def stream(n: int, seed: int = 11) -> tuple[list[EnrichedTransaction], list[Score]]:
    """``amount`` ~ N(50, 10) then N(80, 10) from SHIFT_AT; scores Beta(2, 8) then Beta(5, 3)."""
    rng = random.Random(seed)
    txs, scores = [], []
    for i in range(n):
        shifted = i >= SHIFT_AT
        txs.append(enriched(i, rng.gauss(80 if shifted else 50, 10), float(rng.randint(1, 6))))
        scores.append(scored(i, rng.betavariate(5, 3) if shifted else rng.betavariate(2, 8)))
    return txs, scores


def champion(version: str) -> ModelVersionPublished:
    return ModelVersionPublished(version=version, reason="promote", status="champion",
                                 artifact_ref=f"redis://{version}", artifact_sha256="0" * 64)


@pytest.mark.integration
async def test_a_shift_is_detected_after_it_happened_and_asks_for_one_retrain(settings, start_service):
    txs, scores = stream(3_000)
    await produce(settings, TRANSACTIONS_ENRICHED, [(KEY, encode(t)) for t in txs] + [(KEY, b"not json")])
    await produce(settings, SCORES, [(KEY, encode(s)) for s in scores])
    await produce(settings, LABELS, [(KEY, encode(Label(tx_id="never-scored", card_id="card-1", is_fraud=True,
                                                        labelled_at=T0)))])

    start_service(functools.partial(monitor.run, config=small(settings)))

    def amount_critical(c: Collector) -> bool:
        events = [decode(r.value, DriftDetected) for r in c.of(DRIFT_EVENTS)]
        return any(e.feature == "amount" and e.severity == "critical" for e in events)

    async with Collector(settings, DRIFT_EVENTS, MODEL_RETRAIN, DEADLETTER) as seen:
        await seen.until(lambda c: amount_critical(c) and c.of(MODEL_RETRAIN) and c.of(DEADLETTER), timeout_s=15)
        await seen.settle(quiet_s=1.0)

    drifts = [decode(r.value, DriftDetected) for r in seen.of(DRIFT_EVENTS)]
    shift_ts = T0 + SHIFT_AT * STEP
    amount = [d for d in drifts if d.feature == "amount"]
    assert [d.severity for d in amount] == ["info", "critical"]  # entered, then escalated: never repeated
    first = amount[0]
    assert first.kind == "feature"
    assert first.reference == Window(start=T0, end=T0 + (WINDOW - 1) * STEP, count=WINDOW)
    assert first.current.count == WINDOW and first.current.end > shift_ts and first.reference.end < shift_ts
    assert not [d for d in drifts if d.feature == "card_tx_count_24h"]  # the stationary feature stays quiet
    score_drifts = [d for d in drifts if d.kind == "score"]
    assert {d.feature for d in score_drifts} == {"score", "alert_rate"}
    assert {d.model_version for d in score_drifts} == {"v1"}  # the version that gave those scores
    assert {r.key for r in seen.of(DRIFT_EVENTS)} == {b"feature", b"score"}

    # Feature and score drift both turn critical inside one cool-down: one request, not a storm.
    (retrain,) = [decode(r.value, RetrainRequested) for r in seen.of(MODEL_RETRAIN)]
    trigger = next(d for d in drifts if d.event_id == retrain.drift_event_id)
    assert trigger.severity == "critical" and retrain.requested_by == "monitor"
    assert seen.of(MODEL_RETRAIN)[0].key == retrain.request_id.encode()
    # learn from where the first drifting window began: the earliest start among the drifts before the request
    assert retrain.since == min(d.current.start for d in drifts if d.kind != "performance" and
                                d.current.end <= trigger.current.end)

    (letter,) = [decode(r.value, DeadLetter) for r in seen.of(DEADLETTER)]
    assert (letter.service, letter.payload, letter.offset) == ("monitor", b"not json", len(txs))
    assert letter.error.startswith("malformed: not JSON")


# --- the handler on in-memory records: no broker needed

SETTINGS = Settings(topic_prefix="unit.")


class Feed:
    """Turns events into ConsumerRecords with increasing offsets per topic."""

    def __init__(self):
        self.offsets: dict[str, int] = {}

    def __call__(self, topic: str, *values: bytes | None) -> list[ConsumerRecord]:
        records = []
        for value in values:
            offset = self.offsets.get(topic, 0)
            self.offsets[topic] = offset + 1
            records.append(ConsumerRecord(SETTINGS.topic(topic), 0, offset, 0, 0, KEY, value, None, 0, 0, []))
        return records


class Behind:
    """The monitor behind the decoding boundary, as the runner runs it (attributes pass through)."""

    def __init__(self, handler: monitor.Monitor):
        self.handler = handler
        self.boundary = Boundary(monitor.SERVICE, SETTINGS, monitor.INPUTS, views=monitor.VIEWS)

    async def __call__(self, records: list[ConsumerRecord]):
        inbound, letters = self.boundary.decode(records)
        return letters + await self.handler(inbound)

    def __getattr__(self, name: str):
        return getattr(self.handler, name)


def outputs(outs, topic: str, event_type):
    return [decode(o.value, event_type) for o in outs if o.topic == SETTINGS.topic(topic)]


async def test_a_new_champion_restarts_the_references():
    handler, feed = Behind(monitor.Monitor(SETTINGS, small(SETTINGS))), Feed()
    txs, scores = stream(2_000)
    before = await handler(feed(TRANSACTIONS_ENRICHED, *map(encode, txs[:1_800])))
    assert [d.feature for d in outputs(before, DRIFT_EVENTS, DriftDetected)] == ["amount", "amount"]

    await handler(feed(MODEL_VERSIONS, encode(champion("v2"))))
    assert handler.features.window is None and handler.champion == "v2"
    # The stream is shifted from here on, but that is now the reference: nothing to report.
    rng = random.Random(5)
    after = [enriched(2_000 + i, rng.gauss(80, 10), 3.0) for i in range(2_500)]
    assert outputs(await handler(feed(TRANSACTIONS_ENRICHED, *map(encode, after))), DRIFT_EVENTS, DriftDetected) == []
    # Scores from the retired model still in flight are not taken for the new reference.
    await handler(feed(SCORES, *(encode(s) for s in scores[:600])))
    assert handler.scores.window is None
    # A re-delivered announcement of the same champion changes nothing.
    await handler(feed(MODEL_VERSIONS, encode(champion("v2"))))
    assert handler.features.window.reference_count == WINDOW


async def test_a_periodic_snapshot_of_the_champion_keeps_the_references_and_its_labels():
    handler, feed = Behind(monitor.Monitor(SETTINGS, small(SETTINGS))), Feed()
    await handler(feed(MODEL_VERSIONS, encode(champion("v1"))))
    txs, _ = stream(1_000)
    await handler(feed(TRANSACTIONS_ENRICHED, *map(encode, txs[:WINDOW])))
    reference = handler.features.window
    await handler(feed(SCORES, encode(scored(1, 0.9, version="v1"))))
    snapshot = champion("v2").model_copy(update={"reason": "periodic", "parent": "v1"})
    await handler(feed(MODEL_VERSIONS, encode(snapshot)))
    assert handler.features.window is reference and handler.champion == "v2"
    label = Label(tx_id="tx-1", card_id="card-1", is_fraud=True, labelled_at=T0 + timedelta(days=2))
    await handler(feed(LABELS, encode(label)))
    assert handler.performance.labels == 1  # scored by v1, the same model learning online
    await handler(feed(MODEL_VERSIONS, encode(champion("v3"))))  # a promotion: a new model
    assert handler.features.window is None


async def test_labels_join_the_score_their_transaction_got():
    handler, feed = Behind(monitor.Monitor(SETTINGS, small(SETTINGS))), Feed()
    await handler(feed(SCORES, encode(scored(1, 0.9)), encode(scored(2, 0.1)), encode(scored(3, 0.2, version="v0"))))
    await handler(feed(MODEL_VERSIONS, encode(champion("v1"))))
    unmatched = metrics.LABELS_UNMATCHED.labels("monitor")._value.get()

    def label(tx: str, fraud: bool) -> bytes:
        return encode(Label(tx_id=tx, card_id="card-1", is_fraud=fraud, labelled_at=T0 + timedelta(days=2)))

    outs = await handler(feed(LABELS, label("tx-1", True), label("tx-2", False), label("tx-3", True),
                              label("tx-unknown", True), label("tx-1", True)))
    assert outs == []  # unknown labels are counted, not dead-lettered
    assert handler.performance.labels == 2  # tx-3 was scored by v0, not the champion
    assert metrics.LABELS_UNMATCHED.labels("monitor")._value.get() - unmatched == 2  # tx-unknown, tx-1 again


async def test_bad_records_are_dead_lettered_and_the_rest_goes_on():
    handler, feed = Behind(monitor.Monitor(SETTINGS, small(SETTINGS))), Feed()
    good = encode(stream(1)[0][0])
    records = feed(TRANSACTIONS_ENRICHED, b"\xff\xfe", None, b'{"features": {}}', good)
    letters = outputs(await handler(records), DEADLETTER, DeadLetter)
    assert [dl.error.split(":")[:2] for dl in letters] == [
        ["malformed", " not UTF-8"],
        ["malformed", " empty message (no value)"],
        ["malformed", " not a valid EnrichedTransaction"],
    ]
    assert handler.features.window.reference_count == 1


async def test_a_retried_batch_is_sent_again_not_counted_twice():
    handler, feed = Behind(monitor.Monitor(SETTINGS, small(SETTINGS))), Feed()
    txs, _ = stream(1_800)
    records = feed(TRANSACTIONS_ENRICHED, *map(encode, txs))
    first = await handler(records)
    again = await handler(records)  # the runner's retry after a failed send
    assert again == first and len(outputs(first, DRIFT_EVENTS, DriftDetected)) == 2
    assert handler.features.window.current_seen == 1_800 - WINDOW


async def test_cool_down_runs_on_event_time_so_a_replay_requests_the_same():
    """Three separate drift episodes, 20 min of event time apart, replayed as fast as they can be read."""
    config = small(SETTINGS)

    async def replay() -> list[tuple[str, datetime]]:
        handler, feed = Behind(monitor.Monitor(SETTINGS, config)), Feed()
        rng, requested = random.Random(9), []
        for episode in range(3):
            handler.on_model_version(champion(f"v{episode}"))  # the retrain was promoted: a new reference
            for i in range(1_600):
                n = episode * 12_000 + i  # 12,000 × 0.1 s = 20 min between episodes
                tx = enriched(n, rng.gauss(50 if i < 1_000 else 90, 10), 3.0)
                outs = await handler(feed(TRANSACTIONS_ENRICHED, encode(tx)))
                requested += [(r.reason, handler.clock) for r in outputs(outs, MODEL_RETRAIN, RetrainRequested)]
        return requested

    first, second = await replay(), await replay()
    assert len(first) == 3 and [t for _, t in first] == [t for _, t in second]
    assert all(reason.startswith("feature drift of amount") for reason, _ in first)


async def test_nothing_is_judged_during_the_warm_up_and_the_reference_starts_after_it():
    # A store that starts empty looks like a shift; here the shift ends exactly with the warm-up
    # (SHIFT_AT events of 0.1 s), so the reference is taken from the world after it.
    config = MonitorConfig.from_settings(SETTINGS, drift_window=WINDOW, drift_evaluate_every=100,
                                         drift_warmup_s=SHIFT_AT * STEP.total_seconds())
    handler, feed = Behind(monitor.Monitor(SETTINGS, config)), Feed()
    txs, scores = stream(SHIFT_AT + 3 * WINDOW)
    outs = await handler(feed(TRANSACTIONS_ENRICHED, *map(encode, txs)))
    outs += await handler(feed(SCORES, *map(encode, scores)))
    assert outputs(outs, DRIFT_EVENTS, DriftDetected) == []
    assert handler.warm_from == T0 + SHIFT_AT * STEP
    assert handler.features.window.reference_count == WINDOW
    assert handler.features.window.current_seen == 2 * WINDOW
    assert handler.scores.window.current_seen == 2 * WINDOW
    # Labels of the warm-up are no yardstick either; those after it are joined.
    labels = [Label(tx_id=f"tx-{i}", card_id="card-1", is_fraud=False, labelled_at=T0 + i * STEP, source="analyst")
              for i in (10, 20, SHIFT_AT + 10)]
    await handler(feed(LABELS, *map(encode, labels)))
    assert handler.performance.labels == 1
