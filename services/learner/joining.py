"""Labels joined to the features each transaction was scored with (point in time, no
leakage), then learned by the champion line and the shadow challenger. An explicit label
whose vector is not stored yet waits for it (``waiting.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.features import FeatureReader
from services.learner.lineage import Lineage
from services.learner.waiting import WaitingLabels
from shared import metrics
from shared.events import EnrichedTransaction, Label


class LabelJoin:
    def __init__(self, features: FeatureReader, lineage: Lineage, waiting: WaitingLabels):
        self.features, self.lineage, self.waiting = features, lineage, waiting

    async def learn(self, labels: list[tuple[ConsumerRecord | None, Label]],
                    arrived: list[tuple[Label, EnrichedTransaction]]) -> list[tuple[ConsumerRecord, Label]]:
        """Learn the waiting labels whose transaction ``arrived`` (with the vector it carries),
        then each label whose vector is stored; return the explicit ones whose vector is not
        (``record`` None: a matured genuine label, whose transaction simply expired).

        Redis is read before anything is learned: a transient error leaves the model as it was.
        """
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
        self.waiting.learned(learned, waited=False)
        return missing

    def _learn_arrived(self, pairs: list[tuple[Label, EnrichedTransaction]]) -> None:
        """Waiting labels whose transaction just arrived, with the vector it was scored with."""
        for label, enriched in pairs:
            self.learn_one(label, enriched.features, enriched.transaction.ts.timestamp())
        self.waiting.learned([label for label, _ in pairs], waited=True)

    def learn_one(self, label: Label, features: dict[str, float], ts: float) -> None:
        metrics.LABEL_DELAY_SECONDS.observe(max(0.0, label.labelled_at.timestamp() - ts))
        self.lineage.learn(label.tx_id, features, label.is_fraud, datetime.fromtimestamp(ts, UTC))
