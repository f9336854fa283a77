"""Labels joined to the features each transaction was scored with (point in time, no
leakage), then learned by the champion line and the shadow challenger. An explicit label
whose vector is not stored yet waits for it (``waiting.py``). Every label, matured and
waiting ones included, is first checked against those learned already (``once.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.features import FeatureReader
from services.learner.lineage import Lineage
from services.learner.once import LearnedOnce
from services.learner.seen import EnrichedSeen
from services.learner.trainer import Labelled
from services.learner.waiting import WaitingLabels
from shared import metrics
from shared.events import Label


class LabelJoin:
    def __init__(self, features: FeatureReader, lineage: Lineage, waiting: WaitingLabels, once: LearnedOnce):
        self.features, self.lineage, self.waiting, self.once = features, lineage, waiting, once
        self._taken: list[Labelled] = []

    async def learn(self, labels: list[tuple[ConsumerRecord | None, Label]],
                    arrived: list[tuple[Label, EnrichedSeen]]) -> list[tuple[ConsumerRecord, Label]]:
        """Learn the waiting labels whose transaction ``arrived`` (with the vector it carries),
        then each label whose vector is stored; return the explicit ones whose vector is not
        (``record`` None: a matured genuine label, whose transaction simply expired).

        A label whose tx_id was learned already (re-published upstream) is skipped, not held.
        Redis is read before anything is learned: a transient error leaves the model as it was.
        """
        fresh = await self.once.fresh([label for _, label in labels])
        self.waiting.learned([label for (_, label), ok in zip(labels, fresh) if not ok], waited=False)
        labels = [pair for pair, ok in zip(labels, fresh) if ok]
        arrived_fresh = await self.once.fresh([label for label, _ in arrived])
        self.waiting.learned([label for (label, _), ok in zip(arrived, arrived_fresh) if not ok], waited=True)
        arrived = [pair for pair, ok in zip(arrived, arrived_fresh) if ok]
        found = await self.features.lookup([(lb.card_id, lb.tx_id) for _, lb in labels]) if labels else {}
        self._learn_arrived(arrived)
        missing, learned = [], []
        for record, label in labels:
            stored = found.get(label.tx_id)
            if stored is None:
                if record is not None:
                    missing.append((record, label))
                continue
            self.learn_one(label, stored.features, stored.ts)
            learned.append(label)
        taken, self._taken = self._taken, []
        self.lineage.learn(taken)  # together: a batch champion scores them in one prediction
        self.waiting.learned(learned, waited=False)
        return missing

    def _learn_arrived(self, pairs: list[tuple[Label, EnrichedSeen]]) -> None:
        """Waiting labels whose transaction just arrived, with the vector it was scored with."""
        for label, enriched in pairs:
            self.learn_one(label, enriched.features, enriched.transaction.ts.timestamp())
        self.waiting.learned([label for label, _ in pairs], waited=True)

    def learn_one(self, label: Label, features: dict[str, float], ts: float) -> None:
        """Take the label: it is learned with the others of the batch, in order, before
        ``learn`` returns (nothing in between awaits: a failed try learns none of them)."""
        metrics.LABEL_DELAY_SECONDS.observe(max(0.0, label.labelled_at.timestamp() - ts))
        self.once.learned(label)
        self._taken.append((label.tx_id, features, label.is_fraud, datetime.fromtimestamp(ts, UTC), label.card_id))
