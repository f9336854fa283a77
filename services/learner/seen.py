"""What the learner reads of an enriched transaction (a view: ``shared/trusted.py``).

Every one moves the event clock and may be sampled for an implicit genuine label (tx_id,
card_id, time); the few a label waits for are learned from their features. Stamps,
freshness and the rest of the transaction are skimmed, not decoded.
"""

from __future__ import annotations

from datetime import datetime

from shared.trusted import View


class TransactionSeen(View):
    tx_id: str
    card_id: str
    ts: datetime


class EnrichedSeen(View):
    transaction: TransactionSeen
    features: dict[str, float]
