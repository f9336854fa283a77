"""The drift loop on the real broker and Redis, closed: simulated traffic whose world changes
at a known transaction (fraud moves to €3–30 online payments while genuine baskets double:
the ``low_value`` drift, which reverses what the champion learned); the monitor detects it,
asks for ONE retrain (cool-down) while the drift goes on, naming when the world changed
(``since``); the learner waits for enough labels since then, trains a challenger on them
alone and promotes it over the champion on the same held-back labels; scoring switches to
it. Prints detection delay, the wall-clock time of each step, and precision/recall at the
alert and review thresholds before the drift, from the drift to the promotion, and after.

Keeping the monitor honest before the drift takes a stationary world, and simulated traffic
is stationary only in a narrow sense: the feature store starts empty (card and merchant
history grows with the run) and ``hour_of_day`` / ``is_weekend`` change whenever the event
clock crosses an hour. So the run is a large population (card history stays near empty)
whose event time stays inside one UTC hour (~38 event minutes from 19:01); it is published by
this test at a fixed simulated start (``publish()`` anchors its clock to the wall clock,
which would put an hour boundary anywhere). The champion in service, v1, is trained
beforehand on another day of the same world (reference features) and announced like any
version; the learner publishes no periodic versions during the run, because every new
champion restarts the monitor's reference windows.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from fraudstream.simulator.traffic import Emission, SimulatorConfig, simulate
from services.features import service as features
from services.features.reference import ReferenceFeatures
from services.ingest import service as ingest
from services.learner import service as learner
from services.learner.retrain import evaluate
from services.model.artifacts import dump, make_store
from services.model.fraud_model import FraudModel
from services.monitor import service as monitor
from services.scoring import service as scoring
from shared.codec import decode, encode
from shared.events import DriftDetected, ModelVersionPublished, RetrainRequested, Score, TrainingWindow, utcnow
from shared.kafka import Out, Sender, make_producer
from shared.topics import DRIFT_EVENTS, MODEL_RETRAIN, MODEL_VERSIONS, SCORES
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.e2e

N = 6000
DRIFT_AT = 2500
OPS_AT = 5000
WARM_N = 4500
WORLD = dict(n_cards=50_000, n_merchants=500, fraud_rate=0.08, label_genuine=True, genuine_label_share=0.3,
             label_delay_mean=timedelta(minutes=3), label_delay_sigma=0.3)
"""At 19:00 UTC ~2.6 transactions per event second: 6,000 span ~38 event minutes; a label comes ~450 later."""
PER_TICK, TICK_S = 100, 0.1


def warm_champion(start) -> FraudModel:
    """v1: the online model after a pre-drift day of the same world, on reference features."""
    config = SimulatorConfig(seed=40, start=start - timedelta(days=1), **WORLD)
    ref, feats, model = ReferenceFeatures(), {}, FraudModel(genuine_rate=1.0)
    for e in simulate(config, WARM_N):
        if e.topic == "transactions.raw":
            feats[e.event.tx_id] = ref.apply(e.event).features
        else:
            ref.apply_label(e.event)
            model.learn(feats[e.event.tx_id], e.event.is_fraud)
    return model


async def announce(settings, model: FraudModel) -> ModelVersionPublished:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        blob, sha = dump(model)
        ref = await make_store(settings, client).put("v1", blob)
    finally:
        await client.aclose()
    event = ModelVersionPublished(version="v1", reason="initial", status="champion", artifact_ref=ref,
                                  artifact_sha256=sha, training_window=TrainingWindow(
                                      labels_seen=model.labels_seen, frauds_seen=model.frauds_seen))
    await produce(settings, MODEL_VERSIONS, [(b"v1", encode(event))])
    return event


async def publish_paced(settings, emissions: list[Emission], sent: dict[str, float]) -> None:
    """Like any producer: JSON on the raw topics in event-time order, ~1,000 events a second;
    ``sent`` gets the wall time (epoch s) each transaction was acknowledged."""
    producer = make_producer(settings)
    await producer.start()
    try:
        sender = Sender(producer)
        for i in range(0, len(emissions), PER_TICK):
            tick = emissions[i:i + PER_TICK]
            await sender.send([Out(settings.topic(e.topic), e.event.card_id.encode(), encode(e.event)) for e in tick])
            sent.update((e.event.tx_id, time.time()) for e in tick if e.topic == "transactions.raw")
            await asyncio.sleep(TICK_S)
    finally:
        await producer.stop()


def at_threshold(pairs: list[tuple[float, bool]], threshold: float) -> str:
    alerted = [y for sc, y in pairs if sc >= threshold]
    frauds = sum(y for _, y in pairs)
    precision = sum(alerted) / len(alerted) if alerted else math.nan
    recall = sum(alerted) / frauds if frauds else math.nan
    metrics = evaluate([(sc, y, 1.0) for sc, y in pairs], threshold)
    return (f"precision {precision:.3f} recall {recall:.3f} ({len(alerted)} alerts, {frauds} frauds in {len(pairs)} "
            f"scores; AP {metrics.get('average_precision', math.nan):.3f})")


async def test_drift_is_detected_once_and_answered_by_a_promoted_challenger(settings, start_service):
    s = settings.model_copy(update={
        "genuine_sample_rate": 1.0, "publish_every_labels": 10**9, "publish_every_s": 1e9,
        "drift_window": 1000, "drift_evaluate_every": 100, "retrain_cooldown_s": 30 * 86400.0,
    })
    begun = time.monotonic()
    # yesterday 19:01 UTC (busy evening): the whole run stays inside that hour of event time
    start = (utcnow() - timedelta(days=1)).replace(hour=19, minute=1, second=0, microsecond=0)
    config = SimulatorConfig(seed=41, start=start, drift_at=DRIFT_AT, drift_new_pattern=True,
                             drift_pattern="low_value", drift_pattern_share=0.7, drift_amount_factor=2.0, **WORLD)
    emissions = list(simulate(config, N))
    txs = [e for e in emissions if e.topic == "transactions.raw"]
    assert txs[-1].at < start.replace(minute=59)  # no hour boundary inside the run
    index = {e.event.tx_id: i for i, e in enumerate(txs)}
    truth = {e.event.tx_id: e.fraud_pattern is not None for e in txs}
    drift_tx, drift_ts = txs[DRIFT_AT].event.tx_id, txs[DRIFT_AT].event.ts
    v1 = await announce(s, warm_champion(start))

    for run in (ingest.run, features.run, scoring.run, learner.run, monitor.run):
        start_service(run, s)

    def verdicts_seen(c: Collector) -> int:
        return sum(decode(r.value, ModelVersionPublished).reason in ("retrain", "rejected")
                   for r in c.of(MODEL_VERSIONS))

    # Late in the drifted stream, after the monitor's verdict, ops ask again (``fraudstream retrain``,
    # no ``since``: one pass over the whole recent window, as before).
    sent: dict[str, float] = {}
    ops_at = next(i for i, e in enumerate(emissions)
                  if e.topic == "transactions.raw" and index[e.event.tx_id] == OPS_AT)
    async with Collector(s, SCORES, DRIFT_EVENTS, MODEL_RETRAIN, MODEL_VERSIONS) as seen:
        await publish_paced(s, emissions[:ops_at], sent)
        await seen.until(lambda c: verdicts_seen(c) >= 1, timeout_s=30)
        ops = await learner.request_retrain(s, "ops: the drifted world's labels are in")
        await publish_paced(s, emissions[ops_at:], sent)
        await seen.until(lambda c: len({decode(r.value, Score).tx_id for r in c.of(SCORES)}) >= N, timeout_s=40)
        await seen.until(lambda c: verdicts_seen(c) >= 2, timeout_s=20)
        await seen.settle(1.5)
    elapsed = time.monotonic() - begun

    # Wall times (epoch s): a score's record keeps its raw transaction's timestamp (entry into
    # the system), so when it was scored is its ``scored`` stage; a verdict's is its publication.
    scores: dict[str, Score] = {}
    arrived: dict[str, float] = {}
    for r in seen.of(SCORES):
        score = decode(r.value, Score)
        if score.tx_id not in scores:  # at-least-once: the first copy is the one acted on
            scores[score.tx_id], arrived[score.tx_id] = score, score.stages["scored"]
    assert set(scores) == set(truth)
    drifts = [(decode(r.value, DriftDetected), r.timestamp / 1000) for r in seen.of(DRIFT_EVENTS)]
    requests = [(decode(r.value, RetrainRequested), r.timestamp / 1000) for r in seen.of(MODEL_RETRAIN)]
    verdicts = sorted(((v, v.published_at.timestamp()) for v in (decode(r.value, ModelVersionPublished)
                                                                  for r in seen.of(MODEL_VERSIONS))
                       if v.version != v1.version), key=lambda p: p[1])

    print(f"\nrun {elapsed:.1f}s; drift injected at tx {DRIFT_AT} ({drift_tx}, event time {drift_ts:%H:%M:%S})")
    for d, _ in drifts:
        print(f"  drift {d.kind} {d.feature or ''} {d.statistic} {d.value:.3g} > {d.threshold:.3g} {d.severity}; "
              f"current window {d.current.start:%H:%M:%S}..{d.current.end:%H:%M:%S}, reference "
              f"{d.reference.start:%H:%M:%S}..{d.reference.end:%H:%M:%S}")
    for q, _ in requests:
        since = "" if q.since is None else f", labels since {q.since:%H:%M:%S}"
        print(f"  retrain requested by {q.requested_by}: {q.reason} (drift event {q.drift_event_id}{since})")
    for v, _ in verdicts:
        print(f"  {v.version} {v.status} ({v.reason}) parent {v.parent}: "
              f"held-back AP {v.metrics.get('average_precision'):.3f} "
              f"vs champion {(v.champion_metrics or {}).get('average_precision'):.3f}, roc_auc "
              f"{v.metrics.get('roc_auc'):.3f} vs {(v.champion_metrics or {}).get('roc_auc'):.3f} on "
              f"{v.metrics.get('labels'):.0f} labels ({v.metrics.get('frauds'):.0f} frauds); learned "
              f"{v.training_window.labels_seen} of transactions {v.training_window.start:%H:%M:%S}.."
              f"{v.training_window.end:%H:%M:%S}")

    # Drift: detected, and only over windows that reach past the injected drift.
    assert drifts, "no drift detected"
    early = [f"{d.kind} {d.feature} {d.statistic} {d.value:.3g} ({d.severity}) to {d.current.end:%H:%M:%S}"
             for d, _ in drifts if d.current.end < drift_ts]
    assert not early, f"drift reported before the injected one: {early}"
    first = min((d for d, _ in drifts), key=lambda d: d.current.end)
    delay_events = sum(1 for e in txs[DRIFT_AT:] if e.event.ts <= first.current.end)
    print(f"detection delay: {delay_events} transactions, {(first.current.end - drift_ts).total_seconds():.0f} "
          f"event seconds after the drift ({first.kind} {first.feature or ''} {first.statistic})")

    # ONE retrain request from the monitor, though the drift goes on; it names a detected drift
    # and, as ``since``, the earliest start of the feature and score windows that showed a drift.
    from_monitor = [(q, at) for q, at in requests if q.requested_by == "monitor"]
    assert len(from_monitor) == 1
    assert [q.request_id for q, _ in requests if q.requested_by == "ops"] == [ops.request_id]
    (request, requested_at), = from_monitor
    assert request.drift_event_id in {d.event_id for d, _ in drifts}
    assert request.since is not None
    assert request.since == min(d.current.start for d, at in drifts if at <= requested_at and d.kind != "performance")
    print(f"retrain requested on labels since {request.since:%H:%M:%S}, "
          f"{(request.since - drift_ts).total_seconds():+.0f} event seconds from the drift")

    # ONE verdict per request, each with both metric sets on the same held-back labels, and a
    # decision that follows them: promoted only at AP ≥ champion AP + margin. The monitor's is
    # a promotion, judged on labels since the drift only.
    assert len(verdicts) == 2
    (promoted, promoted_at), (ops_verdict, ops_verdict_at) = verdicts
    assert promoted.drift_event_id == request.drift_event_id
    assert promoted.reason == "retrain" and promoted.status == "champion", "the monitor's retrain was not promoted"
    assert promoted.training_window.start >= request.since
    # ``since`` is a window start before the drift: the challenger learned some pre-drift labels,
    # but fewer than its training part, so its held-back labels (the newest) are all post-drift.
    pre_drift = sum(1 for e in emissions if e.topic == "labels.raw"
                    and request.since <= txs[index[e.event.tx_id]].event.ts < drift_ts)
    assert pre_drift <= promoted.training_window.labels_seen - promoted.metrics["labels"]
    champion = v1.version
    for verdict, verdict_at in verdicts:
        assert verdict.parent == champion and verdict.champion_metrics is not None
        for key in ("average_precision", "roc_auc", "labels", "frauds"):
            assert key in verdict.metrics and key in verdict.champion_metrics
        assert verdict.metrics["labels"] == verdict.champion_metrics["labels"] >= 0.3 * s.retrain_min_labels
        ap, champion_ap = verdict.metrics["average_precision"], verdict.champion_metrics["average_precision"]
        stamped = [sc for sc in scores.values() if sc.model_version == verdict.version]
        if verdict.reason == "retrain":
            assert verdict.status == "champion" and ap >= champion_ap + s.retrain_margin
            assert stamped, "no score was stamped with the promoted version"
            assert all(arrived[sc.tx_id] >= verdict_at for sc in stamped)
            champion = verdict.version
        else:
            assert verdict.reason == "rejected" and verdict.status == "rejected"
            assert ap < champion_ap + s.retrain_margin
            assert not stamped  # a rejected challenger never scores in production
        print(f"verdict {verdict.version}: {verdict.reason}, {len(stamped)} later scores stamped with it")

    # The wall clock of each step (the test publishes ~370 times faster than the event clock).
    by_promoted = [sc for sc in scores.values() if sc.model_version == promoted.version]
    switched = min(by_promoted, key=lambda sc: arrived[sc.tx_id])
    steps = [("drifted transaction published", sent[drift_tx]), ("scored", arrived[drift_tx]),
             ("drift detected", min(at for _, at in drifts)), ("retrain requested", requested_at),
             ("challenger promoted", promoted_at), ("first score by it", arrived[switched.tx_id])]
    print("wall clock from the drifted transaction's publication: " + "; ".join(
        f"{name} +{at - sent[drift_tx]:.1f}s" for name, at in steps))
    print(f"promoted {promoted.version} after {promoted.training_window.labels_seen} labels since "
          f"{request.since:%H:%M:%S} (at most {pre_drift} from before the drift, "
          f"{promoted.metrics['labels']:.0f} held back); first transaction it scored: tx {index[switched.tx_id]}, "
          f"{(switched.ts - drift_ts).total_seconds():.0f} event seconds after the drift")

    # Precision / recall at the alert and review thresholds, against the simulator's ground truth,
    # by the model that scored: the champion before and after the drift, the promoted challenger.
    def pairs(keep) -> list[tuple[float, bool]]:
        return [(sc.score, truth[t]) for t, sc in scores.items() if keep(t, sc)]

    parts = {
        f"before drift ({v1.version})": pairs(lambda t, sc: index[t] < DRIFT_AT),
        f"drift → promotion ({v1.version})": pairs(lambda t, sc: index[t] >= DRIFT_AT
                                                   and sc.model_version == v1.version),
        f"after promotion ({promoted.version})": pairs(lambda t, sc: sc.model_version == promoted.version),
    }
    if ops_verdict.status == "champion":
        parts[f"after ops promotion ({ops_verdict.version})"] = pairs(
            lambda t, sc: sc.model_version == ops_verdict.version)
    for name, part in parts.items():
        print(f"  {name:<26} at {s.alert_threshold}: {at_threshold(part, s.alert_threshold)}; "
              f"at {s.review_threshold}: {at_threshold(part, s.review_threshold)}")
    assert elapsed < 90
