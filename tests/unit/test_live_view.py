"""The demo's live view, fed records by hand: dead letters summarised by kind with one
example each, the status line naming the champion announced (not the latest score's model)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from fraudstream.live import ALERTS_SHOWN, LiveView
from fraudstream.processes import metrics_ports, service_env
from shared.codec import encode
from shared.events import Alert, DeadLetter, Label, ModelVersionPublished, Score
from shared.settings import Settings
from shared.topics import ALERTS, DEADLETTER, LABELS, MODEL_VERSIONS, SCORES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ERRORS = ["malformed: not JSON: unexpected end of data", "duplicate: tx_id t1 was already accepted",
          "malformed: not JSON: unexpected end of data", "malformed: not UTF-8: invalid start byte",
          "duplicate: tx_id t2 was already accepted"]


def record(topic: str, offset: int, event) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", encode(event), None, 0, 0, [])


def letter(error: str) -> DeadLetter:
    return DeadLetter(service="ingest", topic="transactions.raw", partition=0, offset=1, error=error,
                      payload=b"{", failed_at=T0)


def version(v: str, status: str = "champion", reason: str = "periodic") -> ModelVersionPublished:
    return ModelVersionPublished(version=v, reason=reason, status=status, artifact_ref=f"redis://{v}",
                                 artifact_sha256="0" * 64)


def test_dead_letters_are_counted_by_kind_and_each_kind_is_shown_once():
    printed: list[str] = []
    view = LiveView(Settings(), printed.append)
    for i, error in enumerate(ERRORS):
        view.observe(DEADLETTER, record(DEADLETTER, i, letter(error)))
    assert [line.split("(first of its kind: ")[1].split(";")[0] for line in printed] == [
        "malformed: not JSON", "duplicate", "malformed: not UTF-8"]
    status, dead = view.status(3.0, sent=10, labels=2, bad=5)
    assert dead.strip() == ("dead letters: malformed: not JSON 2, duplicate 2, malformed: not UTF-8 1 "
                            "(total 5; `fraudstream deadletter list`)")
    assert view.status(6.0, sent=10, labels=2, bad=5)[1:] == []  # nothing new: no dead-letter line


def test_the_status_names_the_champion_announced_not_the_latest_scores_model():
    view = LiveView(Settings(), lambda line: None)
    view.observe(MODEL_VERSIONS, record(MODEL_VERSIONS, 0, version("v1", reason="initial")))
    view.observe(SCORES, record(SCORES, 0, Score(tx_id="t1", card_id="c1", ts=T0, score=0.1, decision="approve",
                                                 model_version="v1")))
    view.observe(MODEL_VERSIONS, record(MODEL_VERSIONS, 1, version("v2")))
    view.observe(MODEL_VERSIONS, record(MODEL_VERSIONS, 2, version("v3", status="rejected", reason="rejected")))
    assert view.status(3.0, sent=1, labels=0, bad=0)[0].endswith("| champion v2")


def test_a_few_alerts_are_shown_per_interval_and_the_rest_counted():
    printed: list[str] = []
    view = LiveView(Settings(), printed.append)
    for i in range(7):
        alert = Alert(tx_id=f"t{i}", card_id="c1", merchant_id="m1", ts=T0, score=0.95, severity="high",
                      decision="decline", amount=10.0, currency="EUR", channel="pos", country="FR", model_version="v1")
        view.observe(ALERTS, record(ALERTS, i, alert))
    assert sum("ALERT" in line for line in printed) == ALERTS_SHOWN
    assert view.status(3.0, sent=7, labels=0, bad=0)[0].strip() == "… and 3 more alerts (`fraudstream tail alerts`)"
    view.observe(ALERTS, record(ALERTS, 7, alert))
    assert sum("ALERT" in line for line in printed) == ALERTS_SHOWN + 1  # a new interval shows again


def test_each_service_gets_its_own_metrics_port():
    names = ["ingest", "features", "scoring", "learner", "monitor"]
    env = service_env(names, {"FRAUDSTREAM_METRICS_PORT": "9000", "A": "1"}, metrics_base=9100)
    assert [e["FRAUDSTREAM_METRICS_PORT"] for e in env.values()] == ["9100", "9101", "9102", "9103", "9104"]
    assert all(e["A"] == "1" for e in env.values())
    assert metrics_ports(names, 9100)["monitor"] == 9104


def test_precision_and_recall_of_the_alerts_on_the_latest_labels():
    view = LiveView(Settings(alert_threshold=0.8), lambda line: None)
    for i, score in enumerate([0.9, 0.95, 0.2, 0.1, 0.85]):
        view.observe(SCORES, record(SCORES, i, Score(tx_id=f"t{i}", card_id="c1", ts=T0, score=score,
                                                     decision="approve", model_version="v1")))
    for i, fraud in enumerate([True, False, True, False]):  # t4 is not labelled yet
        view.observe(LABELS, record(LABELS, i, Label(tx_id=f"t{i}", card_id="c1", is_fraud=fraud, labelled_at=T0,
                                                     source="chargeback")))
    assert view.status(3.0, sent=5, labels=4, bad=0)[0].endswith("| last 4 labels: precision 0.50 recall 0.50")
