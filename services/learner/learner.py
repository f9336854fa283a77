"""The learner's batch handler: labels (explicit, and implicit genuine ones at maturity)
joined to stored features and learned; versions followed; retrain requests queued and
answered; snapshots published. Each concept lives in its own module; this one routes.

Order within a batch: announcements first (consumed before this batch's labels), then
labels, then retrain requests (the window, and a promoted challenger, then hold everything
consumed), then the batch challenger if its refit is due (``refits``), then a snapshot if
one is due.

The runner retries a batch after a transient Redis or Kafka error. Learning is not
idempotent (a label learned twice counts twice), so a batch's progress is kept in an
:class:`Attempt`: a retry resumes where the failed try stopped and never learns again.
A label published twice (ingest re-publishes after a restart) is a different matter: its
tx_id is learned once per lineage by ``once.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from services.learner.joining import LabelJoin
from services.learner.lineage import Lineage
from services.learner.maturity import Maturity
from services.learner.publishing import Publisher
from services.learner.refits import BatchRefits
from services.learner.retrain_queue import RetrainQueue
from services.learner.seen import EnrichedSeen
from services.learner.trainer import Trainer
from services.learner.verdicts import Verdicts
from shared.boundary import Inbound, Route, dispatch
from shared.events import Label, ModelVersionPublished, RetrainRequested
from shared.kafka import Out
from shared.topics import LABELS, MODEL_RETRAIN, MODEL_VERSIONS, TRANSACTIONS_ENRICHED


@dataclass
class Attempt:
    """One batch's events, collected by the routes, and how far handling them got."""

    consumed: tuple[tuple[str, int, int], ...]
    labels: list[tuple[ConsumerRecord | None, Label]] = field(default_factory=list)
    arrived: list[EnrichedSeen] = field(default_factory=list)
    """Transactions a waiting label waited for."""
    versions: list[ModelVersionPublished] = field(default_factory=list)
    requests: list[RetrainRequested] = field(default_factory=list)
    matured: list[Label] | None = None
    """Taken out of Redis once: kept here until learned."""
    missing: list[tuple[ConsumerRecord, Label]] | None = None
    """Set once the batch is learned: the labels whose vector is not there yet."""
    due: list[RetrainRequested] | None = None
    """Taken off the queue once: answered one by one."""


class Learner:
    def __init__(self, lineage: Lineage, join: LabelJoin, maturity: Maturity, queue: RetrainQueue,
                 publisher: Publisher, verdicts: Verdicts, refits: BatchRefits):
        self.lineage, self.join, self.maturity, self.queue = lineage, join, maturity, queue
        self.waiting = join.waiting
        self.publisher, self.verdicts, self.refits = publisher, verdicts, refits
        self.routes: dict[str, Route] = {LABELS: self.on_label, TRANSACTIONS_ENRICHED: self.on_enriched,
                                         MODEL_VERSIONS: self.on_version, MODEL_RETRAIN: self.on_request}
        self.attempt = Attempt(())

    def on_label(self, item: Inbound[Label]) -> None:
        self.attempt.labels.append((item.record, item.event))

    def on_enriched(self, item: Inbound[EnrichedSeen]) -> None:
        self.maturity.note(item.event)
        if self.waiting.arrived(item.event):
            self.attempt.arrived.append(item.event)

    def on_version(self, item: Inbound[ModelVersionPublished]) -> None:
        self.attempt.versions.append(item.event)

    def on_request(self, item: Inbound[RetrainRequested]) -> None:
        self.attempt.requests.append(item.event)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        consumed = tuple((i.record.topic, i.record.partition, i.record.offset) for i in batch)
        if consumed != self.attempt.consumed:  # a new batch, not a retry
            self.attempt = Attempt(consumed)
            dispatch(self.routes, batch)
        attempt = self.attempt
        await self._forget_acknowledged()
        for event in attempt.versions:  # a version followed already is known: followed once
            await self.lineage.follow(event)
        if attempt.missing is None:
            await self.maturity.flush([label for _, label in attempt.labels])
            if attempt.matured is None:
                attempt.matured = await self.maturity.matured()
            arrived = await self.waiting.labels_of(attempt.arrived)
            labels = attempt.labels + [(None, label) for label in attempt.matured]
            attempt.missing = await self.join.learn(labels, arrived)
        await self.waiting.hold(attempt.missing)
        letters = await self.waiting.expired()
        if attempt.due is None:
            recent = self.lineage.trainer.recent
            await self.queue.add(attempt.requests, recent)
            attempt.due = self.queue.due(recent, self.maturity.watermark)
        while attempt.due:
            await self.verdicts.answer(attempt.due[0])
            attempt.due.pop(0)
        await self.refits.maybe_refit()
        await self.publisher.maybe_publish()
        return letters + self.publisher.unsent

    async def on_idle(self) -> list[Out]:
        await self._forget_acknowledged()
        # A wait can end while traffic is quiet: its dead letter must not wait for the next record.
        letters = await self.waiting.expired()
        await self.publisher.maybe_publish()
        return letters + self.publisher.unsent

    def ready_to_commit(self) -> bool:
        # the runner asks after every batch's (and idle hook's) outputs are acknowledged
        self.queue.sent()
        published = self.publisher.acknowledged()
        self.waiting.acknowledged(published)
        return published

    async def _forget_acknowledged(self) -> None:
        await self.queue.forget_sent()
        await self.waiting.forget()

    @property
    def trainer(self) -> Trainer:
        return self.lineage.trainer

    @property
    def version(self) -> str | None:
        return self.lineage.version
