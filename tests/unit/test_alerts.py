"""An alert's id derives from its transaction, so a redelivered transaction's duplicate
alert carries the same id and can be deduped downstream."""

from __future__ import annotations

from services.scoring.service import alert
from shared.codec import decode, encode
from shared.events import Alert, EnrichedTransaction, Score, Transaction, alert_id_for
from shared.settings import Settings

SETTINGS = Settings(alert_threshold=0.8)


def enriched(tx_id: str) -> EnrichedTransaction:
    tx = Transaction(tx_id=tx_id, ts="2026-11-01T10:00:00Z", card_id="c1", merchant_id="m1", amount=950.0,
                     currency="EUR", channel="ecom", mcc="5732", country="FR")
    return EnrichedTransaction(transaction=tx, features={"amount": 950.0}, feature_set_version="t")


def score(tx_id: str, value: float, version: str) -> Score:
    return Score(tx_id=tx_id, card_id="c1", ts="2026-11-01T10:00:00Z", score=value, decision="decline",
                 model_version=version)


def test_a_redelivered_transaction_raises_the_same_alert_id():
    first = alert(enriched("tx-9"), score("tx-9", 0.93, "v1"), SETTINGS)
    # redelivered after a rebalance, and scored by the next model version meanwhile
    again = alert(enriched("tx-9"), score("tx-9", 0.97, "v2"), SETTINGS)
    other = alert(enriched("tx-10"), score("tx-10", 0.93, "v1"), SETTINGS)
    assert first.alert_id == again.alert_id == alert_id_for("tx-9") == "6955981479f955dbaf9cc081b6dbe730"
    assert other.alert_id != first.alert_id
    assert (first.severity, again.severity) == ("high", "critical")


def test_the_id_travels_with_the_alert():
    sent = alert(enriched("tx-9"), score("tx-9", 0.93, "v1"), SETTINGS)
    assert decode(encode(sent), Alert).alert_id == sent.alert_id
    given = sent.model_copy(update={"alert_id": "from-elsewhere"})
    assert decode(encode(given), Alert).alert_id == "from-elsewhere"  # an explicit id is kept
