"""learner wiring: labels (explicit, and implicit genuine ones at maturity) joined to the
features each transaction was scored with; versions published every N labels or T seconds;
on a ``model.retrain`` request, a challenger trained on the recent labelled window and
promoted or rejected against the champion on the same held-back labels (``retrain.py``).

A request with ``since`` (the drift's start) is queued until the window holds
``retrain_min_labels_since_drift`` labels and ``retrain_min_frauds_since_drift`` frauds of
transactions from then on; then a challenger learns only those, in
``retrain_epochs_since_drift`` passes. Asked at detection, it would find almost none: labels
come a label delay after their transactions. A request still waiting when the event clock
is twice ``label_maturity_s`` past ``since`` is refused: every label of the first maturity
period is in by then, explicit or matured, so too few means too little traffic to tell.

Offsets are committed only when a version is published, so after a restart the learner
resumes from its last snapshot and relearns exactly what the snapshot lacks. A queued
request is the exception: a periodic snapshot commits past it while it is still waiting,
so it is kept in Redis until its verdict is sent, and reloaded at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

import redis.asyncio as aioredis
from aiokafka import ConsumerRecord

from shared import metrics
from shared.codec import DecodeError, decode, encode
from shared.boundary import dispatch
from shared.events import EnrichedTransaction, Label, ModelVersionPublished, RetrainRequested, TrainingWindow
from shared.kafka import Out
from shared.runner import Clients, Inbound, ServiceSpec, dead_letter, run_service
from shared.settings import Settings
from shared.topics import LABELS, MODEL_RETRAIN, MODEL_VERSIONS, TRANSACTIONS_ENRICHED
from services.features.store import FeatureStore
from services.learner.retrain import Decision, RetrainConfig, retrain
from services.learner.shadow import Shadow
from services.learner.trainer import Trainer, sampled
from services.model import registry
from services.model.artifacts import ArtifactError, ArtifactStore, dump, load_verified, make_store
from services.model.fraud_model import FraudModel

SERVICE = "learner"
INPUTS = (LABELS, TRANSACTIONS_ENRICHED, MODEL_VERSIONS, MODEL_RETRAIN)
log = logging.getLogger(__name__)
MATURED_PER_BATCH = 2000


class Learner:
    def __init__(self, settings: Settings, redis: aioredis.Redis, features: FeatureStore,
                 artifacts: ArtifactStore, trainer: Trainer, history: list[ModelVersionPublished]):
        self.settings, self.redis, self.features, self.artifacts = settings, redis, features, artifacts
        self.trainer = trainer
        self.history = history
        current = registry.champion(history)
        self.version = current.version if current else None
        self.pending_key = f"{settings.redis_prefix}:learner:pending"
        self.watermark = 0.0  # newest transaction event time seen, epoch seconds
        self._new_pending: dict[str, float] = {}
        # announcements already known at start-up: replaying them must not roll the model back
        self.known = {(e.version, e.published_at) for e in history}
        self.last_publish = time.monotonic()
        self.published = False
        self.topics = {t: settings.topic(t) for t in INPUTS}
        self.retrain_config = RetrainConfig.from_settings(settings)
        self.shadow = Shadow()
        self.decisions: list[Decision] = []
        """Every retrain decision taken by this process, latest last (for tests and ops)."""
        self.queue_key = f"{settings.redis_prefix}:learner:retrain-queue"
        self.queued: dict[str, RetrainRequested] = {}
        """Requests with ``since`` waiting for labels since the drift, by request_id, oldest first."""
        self._answered: list[str] = []  # queued requests answered in this batch, verdict not yet sent
        self._sent: list[str] = []  # ... and sent: to drop from Redis
        self.routes = {LABELS: self.on_label, TRANSACTIONS_ENRICHED: self.on_enriched,
                       MODEL_VERSIONS: self.on_version, MODEL_RETRAIN: self.on_request}
        # the batch's events, collected by the routes
        self._labels: list[tuple[ConsumerRecord | None, Label]] = []
        self._versions: list[ModelVersionPublished] = []
        self._requests: list[RetrainRequested] = []

    def on_label(self, item: Inbound[Label]) -> None:
        self._labels.append((item.record, item.event))

    def on_enriched(self, item: Inbound[EnrichedTransaction]) -> None:
        tx = item.event.transaction
        self.watermark = max(self.watermark, tx.ts.timestamp())
        if sampled(tx.tx_id, self.settings.genuine_sample_rate):
            self._new_pending[f"{tx.card_id}|{tx.tx_id}"] = tx.ts.timestamp()

    def on_version(self, item: Inbound[ModelVersionPublished]) -> None:
        self._versions.append(item.event)

    def on_request(self, item: Inbound[RetrainRequested]) -> None:
        self._requests.append(item.event)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        await self._forget_answered()
        self._labels, self._versions, self._requests = [], [], []
        outs = dispatch(self.routes, batch)
        labels, requests = self._labels, self._requests
        for event in self._versions:  # before this batch's labels, as consumed before them
            await self._follow(event)
        await self._flush_pending([label for _, label in labels])
        labels += await self._matured()
        outs += await self._learn(labels)
        # after this batch's labels: the window (and a promoted challenger) holds everything consumed
        await self._queue(requests)
        for request in self._due():
            outs += await self._retrain(request)
        return outs + await self._maybe_publish()

    async def on_idle(self) -> list[Out]:
        await self._forget_answered()
        return await self._maybe_publish()

    def ready_to_commit(self) -> bool:
        # the runner asks after every batch's outputs are acknowledged: verdicts included
        self._sent, self._answered = self._sent + self._answered, []
        published, self.published = self.published, False
        return published

    # --- implicit genuine labels: a sampled transaction with no label after maturity

    async def _flush_pending(self, labels: list[Label]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        if self._new_pending:
            pipe.zadd(self.pending_key, self._new_pending, nx=True)
        if labels:
            pipe.zrem(self.pending_key, *(f"{lb.card_id}|{lb.tx_id}" for lb in labels))
        if pipe:
            pipe.expire(self.pending_key, int(self.settings.label_maturity_s + self.settings.feature_ttl_s))
            await pipe.execute()
        self._new_pending = {}

    async def _matured(self) -> list[tuple[None, Label]]:
        cutoff = self.watermark - self.settings.label_maturity_s
        members = await self.redis.zrangebyscore(self.pending_key, "-inf", cutoff, start=0, num=MATURED_PER_BATCH)
        if not members:
            return []
        await self.redis.zrem(self.pending_key, *members)
        now = datetime.now(UTC)
        pairs = [m.decode().split("|", 1) for m in members]  # card_id|tx_id
        return [(None, Label(tx_id=tx_id, card_id=card_id, is_fraud=False, labelled_at=now, source="maturity"))
                for card_id, tx_id in pairs]

    # --- learning

    async def _learn(self, labels: list[tuple[ConsumerRecord | None, Label]]) -> list[Out]:
        if not labels:
            return []
        found = await self.features.lookup([(lb.card_id, lb.tx_id) for _, lb in labels])
        outs = []
        for record, label in labels:
            stored = found.get(label.tx_id)
            if stored is None:
                if record is not None:  # explicit labels only: a matured one simply expired
                    reason = f"unknown or expired tx_id: no stored features for {label.tx_id} on card {label.card_id}"
                    outs.append(dead_letter(self.settings, SERVICE, record, reason))
                continue
            ts = datetime.fromtimestamp(stored.ts, UTC)
            metrics.LABEL_DELAY_SECONDS.observe(max(0.0, label.labelled_at.timestamp() - stored.ts))
            self.trainer.learn(label.tx_id, stored.features, label.is_fraud, ts)
            self.shadow.learn(label.tx_id, stored.features, label.is_fraud, ts)
        return outs

    async def _follow(self, event: ModelVersionPublished) -> None:
        """A champion announced by somebody else (promote, rollback) becomes what we train;
        a challenger announced by ops learns beside it (see ``shadow.py``)."""
        if (event.version, event.published_at) in self.known:
            return
        self.known.add((event.version, event.published_at))
        self.history.append(event)
        if self.shadow.owns(event) and event.status in ("retired", "rejected"):
            self.shadow.stop()
            return
        if self.shadow.owns(event) and event.status == "champion":
            self.trainer, self.version = self.shadow.stop(), event.version  # it learned every label since
            log.info("challenger %s promoted: training continues from it", event.version)
            return
        if event.status == "challenger" and event.version != self.shadow.version:
            try:
                model = await load_verified(self.artifacts, event.artifact_ref, event.artifact_sha256)
            except ArtifactError as exc:
                log.error("cannot start challenger %s: %s", event.version, exc)
                return
            self.shadow.start(event.version, model, self.trainer)
            log.info("challenger %s learns beside champion %s", event.version, self.version)
            return
        if event.status != "champion" or event.version == self.version:
            return
        try:
            self.trainer.model = await load_verified(self.artifacts, event.artifact_ref, event.artifact_sha256)
        except ArtifactError as exc:
            log.error("cannot follow champion %s: %s", event.version, exc)
            return
        self.version = event.version
        log.info("training continues from %s (%s)", event.version, event.reason)

    # --- retrain on request

    async def resume_queue(self) -> None:
        """The requests still waiting when the learner stopped (see the module docstring)."""
        for raw in (await self.redis.hgetall(self.queue_key)).values():
            try:
                request = decode(raw, RetrainRequested)
            except DecodeError as exc:
                log.error("dropping an unreadable queued retrain request: %s", exc)
                continue
            self.queued[request.request_id] = request
        self.queued = dict(sorted(self.queued.items(), key=lambda item: item[1].requested_at))
        for request in self.queued.values():
            log.info("retrain %s still queued: labels since %s", request.request_id, request.since)

    async def _queue(self, requests: list[RetrainRequested]) -> None:
        """Requests without ``since`` run now, as before; with it, they wait here and in Redis.
        A request already queued (re-read after a restart) is queued once."""
        fresh = {r.request_id: r for r in requests if r.request_id not in self.queued}
        waiting = {i: r for i, r in fresh.items() if r.since is not None}
        if waiting:
            await self.redis.hset(self.queue_key, mapping={i: encode(r) for i, r in waiting.items()})
            await self.redis.expire(self.queue_key, int(2 * self.settings.label_maturity_s))
        for request in waiting.values():
            log.info("retrain %s by %s queued: %s", request.request_id, request.requested_by,
                     self._lacking(request) or "enough labels since the drift already")
        self.queued.update(fresh)

    def _since(self, request: RetrainRequested) -> tuple[int, int]:
        """Labels and frauds in the window of transactions from ``request.since`` on."""
        since = request.since.timestamp()
        kept = [e.is_fraud for e in self.trainer.recent if e.ts >= since]
        return len(kept), sum(kept)

    def _lacking(self, request: RetrainRequested) -> str | None:
        """What a request with ``since`` still waits for in the window (None: nothing)."""
        if request.since is None:
            return None
        (labels, frauds), settings = self._since(request), self.settings
        if labels >= settings.retrain_min_labels_since_drift and frauds >= settings.retrain_min_frauds_since_drift:
            return None
        return (f"{labels} labels, {frauds} frauds since {request.since:%Y-%m-%d %H:%M:%S} (needs "
                f"{settings.retrain_min_labels_since_drift} and {settings.retrain_min_frauds_since_drift})")

    def _due(self) -> list[RetrainRequested]:
        """The queued requests to answer now, oldest first: without ``since``; with enough
        labels since; or waiting too long (refused, see the module docstring)."""
        due = []
        for request_id, request in list(self.queued.items()):
            if request.since is not None:
                expired = self.watermark - request.since.timestamp() > 2 * self.settings.label_maturity_s
                if self._lacking(request) and not expired:
                    continue
                log.info("retrain %s runs: %d labels, %d frauds since %s", request_id, *self._since(request),
                         request.since)
                self._answered.append(request_id)
            due.append(self.queued.pop(request_id))
        return due

    async def _forget_answered(self) -> None:
        """Drop from Redis the requests whose verdicts were sent (``ready_to_commit``); a
        crash in between answers a request twice: at least once, like every input."""
        if self._sent:
            await self.redis.hdel(self.queue_key, *self._sent)
            self._sent = []

    async def _retrain(self, request: RetrainRequested) -> list[Out]:
        """Challenger vs champion on the same held-back labels; announce the verdict.

        Promoted: the challenger (which also learned the held-back part) is announced as
        champion and training continues from it; it holds every label consumed so far that
        is still in the window, so offsets may be committed. Rejected: its artifact is kept
        and announced as ``rejected`` (to inspect, or promote by hand); the champion stays,
        and offsets wait for its next snapshot unless it has learned nothing since the last.
        Refused (too few labels or frauds; with ``since``, still too few after waiting):
        logged, nothing announced.
        """
        config = self.retrain_config
        if request.since is not None:  # as many labels since the drift as the queue waited for
            config = replace(config, since=request.since.timestamp(), epochs=self.settings.retrain_epochs_since_drift,
                             min_labels=self.settings.retrain_min_labels_since_drift,
                             min_frauds=self.settings.retrain_min_frauds_since_drift)
        decision = await asyncio.to_thread(retrain, self.trainer.model, list(self.trainer.recent), config)
        self.decisions.append(decision)
        requested = f"retrain {request.request_id} by {request.requested_by} ({request.reason})"
        if decision.challenger is None:
            log.warning("%s refused: %s", requested, decision.why)
            return []
        promote = decision.outcome == "promote"
        event, out = await self._announce(
            decision.challenger, parent=self.version, reason="retrain" if promote else "rejected",
            status="champion" if promote else "rejected",
            training_window=TrainingWindow(
                labels_seen=decision.challenger.labels_seen, frauds_seen=decision.challenger.frauds_seen,
                start=datetime.fromtimestamp(decision.start, UTC), end=datetime.fromtimestamp(decision.end, UTC)),
            metrics=decision.metrics, champion_metrics=decision.champion_metrics,
            drift_event_id=request.drift_event_id,
        )
        version = event.version
        if promote:
            self.trainer.replace(decision.challenger, decision.window, decision.challenger_pairs)
            self.trainer.start = event.training_window.start
            self.trainer.end = event.training_window.end
            self.version = version
            self.last_publish = time.monotonic()
            self.published = True
        elif self.trainer.learned_since_publish == 0:
            self.published = True  # the champion's snapshot is current: nothing to replay
        log.warning("%s: %s %s; %s", requested, "promoted" if promote else "rejected", version, decision.why)
        return [out]

    async def _maybe_publish(self) -> list[Out]:
        due = self.trainer.learned_since_publish >= self.settings.publish_every_labels or (
            self.trainer.learned_since_publish and time.monotonic() - self.last_publish >= self.settings.publish_every_s
        )
        if not due:
            return []
        event, out = await self._announce(
            self.trainer.model, parent=self.version, reason="periodic" if self.version else "initial",
            status="champion", training_window=self.trainer.window(), metrics=self.trainer.metrics.as_dict(),
        )
        self.version = event.version
        self.trainer.learned_since_publish = 0
        self.last_publish = time.monotonic()
        self.published = True
        log.info("published %s after %d labels", event.version, event.training_window.labels_seen)
        return [out, *await self._publish_shadow(event)]

    async def _publish_shadow(self, champion: ModelVersionPublished) -> list[Out]:
        """The challenger's snapshot beside each champion snapshot, with both metric sets."""
        challenger = self.shadow.trainer
        if challenger is None or not challenger.learned_since_publish:
            return []
        event, out = await self._announce(
            challenger.model, parent=self.shadow.version, reason="periodic", status="challenger",
            training_window=challenger.window(), metrics=challenger.metrics.as_dict(),
            champion_metrics=champion.metrics,
        )
        self.shadow.version = event.version
        challenger.learned_since_publish = 0
        return [out]

    async def _announce(self, model: FraudModel, **fields) -> tuple[ModelVersionPublished, Out]:
        """Store the model under the next version and make its announcement (sent by the runner)."""
        version = registry.next_version(self.history)
        blob, sha = dump(model)
        event = ModelVersionPublished(version=version, artifact_ref=await self.artifacts.put(version, blob),
                                      artifact_sha256=sha, **fields)
        self.history.append(event)
        self.known.add((event.version, event.published_at))
        return event, Out(self.topics[MODEL_VERSIONS], version.encode(), encode(event))


async def start_learner(settings: Settings, clients: Clients) -> Learner:
    """Resume from the champion on ``model.versions``, or start a fresh model."""
    artifacts = make_store(settings, clients.redis)
    history = await registry.history(settings)
    model = FraudModel(genuine_rate=settings.genuine_sample_rate)
    current = registry.champion(history)
    if current is not None:
        try:
            model = await load_verified(artifacts, current.artifact_ref, current.artifact_sha256)
        except ArtifactError as exc:
            log.error("champion %s cannot be loaded (%s); starting a fresh model", current.version, exc)
    trainer = Trainer(model, settings.genuine_sample_rate, settings.alert_threshold, settings.retrain_window_labels)
    learner = Learner(settings, clients.redis, FeatureStore(clients.redis, settings), artifacts, trainer, history)
    await learner.resume_queue()
    challenger = active_challenger(history)
    if challenger is not None:  # resume the shadow from its latest snapshot
        try:
            learner.shadow.start(challenger.version, await load_verified(
                artifacts, challenger.artifact_ref, challenger.artifact_sha256), trainer)
        except ArtifactError as exc:
            log.error("challenger %s cannot be loaded (%s); it stops", challenger.version, exc)
    return learner


def active_challenger(history: list[ModelVersionPublished]) -> ModelVersionPublished | None:
    """The latest challenger announcement, unless a later one promoted, retired or rejected it."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].status == "challenger":
            ended = any(e.version == history[i].version for e in history[i + 1:])
            return None if ended else history[i]
    return None


@asynccontextmanager
async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
    yield await start_learner(settings, clients)


SPEC = ServiceSpec(SERVICE, INPUTS, build)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(SPEC, settings, stop)


async def request_retrain(settings: Settings, reason: str, requested_by: str = "ops",
                          drift_event_id: str | None = None, since: datetime | None = None) -> RetrainRequested:
    """Ask the learner for a challenger (what ``fraudstream retrain`` does); with ``since``,
    one trained on labels of transactions from then on, once enough are in."""
    from shared.kafka import publish_one

    request = RetrainRequested(reason=reason, requested_by=requested_by, drift_event_id=drift_event_id, since=since)
    await publish_one(settings, MODEL_RETRAIN, request.request_id.encode(), encode(request))
    return request
