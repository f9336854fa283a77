"""Labels joined to the features each transaction was scored with (point in time, no
leakage), then learned by the champion line and the shadow challenger."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from shared import metrics
from shared.boundary import dead_letter
from shared.events import Label
from shared.kafka import Out
from shared.settings import Settings
from services.features import FeatureReader
from services.learner.lineage import Lineage

SERVICE = "learner"


class LabelJoin:
    def __init__(self, settings: Settings, features: FeatureReader, lineage: Lineage):
        self.settings, self.features, self.lineage = settings, features, lineage

    async def learn(self, labels: list[tuple[ConsumerRecord | None, Label]]) -> list[Out]:
        """Learn each label whose vector is stored; dead-letter an explicit one whose is not
        (``record`` None: a matured genuine label, whose transaction simply expired)."""
        if not labels:
            return []
        found = await self.features.lookup([(lb.card_id, lb.tx_id) for _, lb in labels])
        outs = []
        for record, label in labels:
            stored = found.get(label.tx_id)
            if stored is None:
                if record is not None:
                    reason = f"unknown or expired tx_id: no stored features for {label.tx_id} on card {label.card_id}"
                    outs.append(dead_letter(self.settings, SERVICE, record, reason))
                continue
            metrics.LABEL_DELAY_SECONDS.observe(max(0.0, label.labelled_at.timestamp() - stored.ts))
            self.lineage.learn(label.tx_id, stored.features, label.is_fraud, datetime.fromtimestamp(stored.ts, UTC))
        return outs
