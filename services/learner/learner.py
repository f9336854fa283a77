"""The learner's batch handler: labels (explicit, and implicit genuine ones at maturity)
joined to stored features and learned; versions followed; retrain requests queued and
answered; snapshots published. Each concept lives in its own module; this one routes.

Order within a batch: announcements first (consumed before this batch's labels), then
labels, then retrain requests (the window, and a promoted challenger, then hold everything
consumed), then a snapshot if one is due.
"""

from __future__ import annotations

from aiokafka import ConsumerRecord

from shared.boundary import Inbound, dispatch
from shared.events import EnrichedTransaction, Label, ModelVersionPublished, RetrainRequested
from shared.kafka import Out
from shared.topics import LABELS, MODEL_RETRAIN, MODEL_VERSIONS, TRANSACTIONS_ENRICHED
from services.learner.joining import LabelJoin
from services.learner.lineage import Lineage
from services.learner.maturity import Maturity
from services.learner.publishing import Publisher
from services.learner.retrain_queue import RetrainQueue
from services.learner.trainer import Trainer
from services.learner.verdicts import Verdicts


class Learner:
    def __init__(self, lineage: Lineage, join: LabelJoin, maturity: Maturity, queue: RetrainQueue,
                 publisher: Publisher, verdicts: Verdicts):
        self.lineage, self.join, self.maturity, self.queue = lineage, join, maturity, queue
        self.waiting = join.waiting
        self.publisher, self.verdicts = publisher, verdicts
        self.routes = {LABELS: self.on_label, TRANSACTIONS_ENRICHED: self.on_enriched,
                       MODEL_VERSIONS: self.on_version, MODEL_RETRAIN: self.on_request}
        # the batch's events, collected by the routes
        self._labels: list[tuple[ConsumerRecord | None, Label]] = []
        self._arrived: list[EnrichedTransaction] = []  # transactions a waiting label waited for
        self._versions: list[ModelVersionPublished] = []
        self._requests: list[RetrainRequested] = []

    def on_label(self, item: Inbound[Label]) -> None:
        self._labels.append((item.record, item.event))

    def on_enriched(self, item: Inbound[EnrichedTransaction]) -> None:
        self.maturity.note(item.event)
        if self.waiting.arrived(item.event):
            self._arrived.append(item.event)

    def on_version(self, item: Inbound[ModelVersionPublished]) -> None:
        self._versions.append(item.event)

    def on_request(self, item: Inbound[RetrainRequested]) -> None:
        self._requests.append(item.event)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        await self._forget_acknowledged()
        self._labels, self._arrived, self._versions, self._requests = [], [], [], []
        outs = dispatch(self.routes, batch)
        for event in self._versions:
            await self.lineage.follow(event)
        self.join.learn_arrived(await self.waiting.labels_of(self._arrived))
        labels = self._labels
        await self.maturity.flush([label for _, label in labels])
        labels += [(None, label) for label in await self.maturity.matured()]
        await self.waiting.hold(await self.join.learn(labels))
        outs += await self.waiting.expired()
        await self.queue.add(self._requests, self.lineage.trainer.recent)
        for request in self.queue.due(self.lineage.trainer.recent, self.maturity.watermark):
            outs += await self.verdicts.answer(request)
        return outs + await self.publisher.maybe_publish()

    async def on_idle(self) -> list[Out]:
        await self._forget_acknowledged()
        return await self.publisher.maybe_publish()

    def ready_to_commit(self) -> bool:
        # the runner asks after every batch's outputs are acknowledged: verdicts and letters included
        self.queue.sent()
        published = self.publisher.take_published()
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
