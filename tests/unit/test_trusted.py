"""The cheap decode of internal topics: what a service wrote comes back equal to the full
decode and re-encodes to the same bytes; what is not that topic's event is refused. Views
(only the fields a consumer reads) refuse the same records, but what is inside a field they
skim."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_type_hints

import orjson
import pytest
from pydantic_core import SchemaValidator

from services.learner import service as learner
from services.monitor import service as monitor
from shared.boundary import decoder_for, written_by_services
from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.events import (
    Alert,
    DriftDetected,
    EnrichedTransaction,
    Label,
    ModelVersionPublished,
    Reason,
    Score,
    Transaction,
)
from shared.topics import TOPICS
from shared.trusted import View, _without_functions, trusting_decoder, view_decoder

TS = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
TX = Transaction(tx_id="tx-1", ts=TS, card_id="card-1", merchant_id="m-1", amount=12.5, currency="EUR",
                 channel="ecom", mcc="5411", country="FR", device_id="d-1", lat=48.85, lon=2.35)
EVENTS = {
    Transaction: TX,
    Label: Label(tx_id="tx-1", card_id="card-1", is_fraud=True, labelled_at=TS, source="analyst"),
    EnrichedTransaction: EnrichedTransaction(transaction=TX, features={"amount": 12.5, "card_tx_1h": 3.0},
                                             feature_set_version="v3", freshness_s={"card": 2.0},
                                             stages={"produced": 1.7e9, "enriched": 1.7e9 + 0.01}),
    Score: Score(tx_id="tx-1", card_id="card-1", ts=TS, score=0.875, decision="decline", model_version="v7",
                 reasons=[Reason(feature="amount", value=12.5, contribution=0.4, text="amount 12.5")],
                 stages={"scored": 1.7e9}),
    ModelVersionPublished: ModelVersionPublished(version="v7", reason="initial", status="champion",
                                                 artifact_ref="file:///a", artifact_sha256="0" * 64,
                                                 metrics={"auc": 0.9}, published_at=TS),
}
INTERNAL = sorted(name for name in TOPICS if written_by_services(name) and TOPICS[name].event in EVENTS)


def test_the_internal_topics_are_the_ones_only_services_write():
    assert INTERNAL == ["labels", "model.versions", "scores", "scores.shadow", "transactions.enriched",
                        "transactions.valid"]


@pytest.mark.parametrize("event_type", list(EVENTS), ids=lambda t: t.__name__)
def test_an_event_a_service_wrote_is_read_by_shape_equal_to_the_full_decode(event_type):
    raw = encode(EVENTS[event_type])
    by_shape = SchemaValidator(_without_functions(event_type.__pydantic_core_schema__)).validate_json(raw)
    assert type(by_shape) is event_type
    assert by_shape == decode(raw, event_type) == trusting_decoder(event_type)(raw) == EVENTS[event_type]
    assert encode(by_shape) == raw  # encoded once, re-encoded identically downstream


@pytest.mark.parametrize("event_type", list(EVENTS), ids=lambda t: t.__name__)
def test_every_truncation_is_refused(event_type):
    raw, read = encode(EVENTS[event_type]), trusting_decoder(event_type)
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            read(raw[:cut])


@pytest.mark.parametrize("topic", INTERNAL)
def test_another_topics_event_is_refused(topic):
    read = trusting_decoder(TOPICS[topic].event)
    for event_type, event in EVENTS.items():
        if event_type is not TOPICS[topic].event:
            with pytest.raises(DecodeError, match=f"not a valid {TOPICS[topic].event.__name__}"):
                read(encode(event))


def _label(**changes) -> bytes:
    obj = orjson.loads(encode(EVENTS[Label])) | changes
    return orjson.dumps(obj)


@pytest.mark.parametrize("changes, reason", [
    ({"schema_version": 2}, "unknown schema_version 2"),
    ({"is_fraud": "true"}, "is_fraud: Input should be a valid boolean"),
    ({"is_fraud": 1}, "is_fraud: Input should be a valid boolean"),
    ({"labelled_at": 1772368215}, "must be an ISO 8601 date-time string, got int"),
    ({"labelled_at": "1772368215"}, "not an ISO 8601 date-time"),
    ({"labelled_at": "2026-03-01T12:30:15"}, "timezone info"),
    ({"source": "rumour"}, "source: Input should be"),
    ({"card_id": ""}, "card_id: String should have at least 1 character"),
    ({"extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_a_wrong_field_is_refused_with_the_full_rules_reason(changes, reason):
    with pytest.raises(DecodeError, match=reason):
        trusting_decoder(Label)(_label(**changes))


def test_non_finite_numbers_and_empty_records_are_refused():
    raw = encode(EVENTS[EnrichedTransaction]).replace(b'"card_tx_1h":3.0', b'"card_tx_1h":NaN')
    with pytest.raises(DecodeError, match="not JSON"):
        trusting_decoder(EnrichedTransaction)(raw)
    for empty, why in ((None, "no value"), (b"", "zero bytes")):
        with pytest.raises(DecodeError, match=why):
            trusting_decoder(Transaction)(empty)


def test_a_time_in_another_zone_takes_the_full_rules_and_comes_out_utc():
    label = trusting_decoder(Label)(_label(labelled_at="2026-03-01T13:30:15.123456+01:00"))
    assert label.labelled_at == TS and label.labelled_at.utcoffset().total_seconds() == 0


# --- views: a consumer decodes only the fields it reads, and refuses what the full decode refuses

VIEWS = sorted(((service.SERVICE, topic, view) for service in (monitor, learner)
                for topic, view in service.SPEC.views.items()), key=lambda v: (v[0], v[1]))
ALERT = Alert(tx_id="tx-1", card_id="card-1", merchant_id="m-1", ts=TS, amount=12.5, currency="EUR", country="FR",
              channel="ecom", score=0.875, severity="high", decision="decline", model_version="v7")


def view_id(case) -> str:
    return f"{case[0]}:{case[1]}"


def read_fields(view: type[View], seen: object, event: object) -> None:
    """Every field the view reads equals the event's (nested views field by field)."""
    for name, hint in get_type_hints(view).items():
        if isinstance(hint, type) and issubclass(hint, View):
            read_fields(hint, getattr(seen, name), getattr(event, name))
        else:
            assert getattr(seen, name) == getattr(event, name), name


def test_the_services_read_their_busy_inputs_as_views():
    assert [(service, topic) for service, topic, _ in VIEWS] == [
        ("learner", "transactions.enriched"), ("monitor", "scores"), ("monitor", "transactions.enriched")]


@pytest.mark.parametrize("case", VIEWS, ids=view_id)
def test_a_view_reads_what_the_full_decode_reads(case):
    _, topic, view = case
    event = EVENTS[TOPICS[topic].event]
    seen = view_decoder(TOPICS[topic].event, view)(encode(event))
    assert type(seen) is view
    read_fields(view, seen, event)


@pytest.mark.parametrize("case", VIEWS, ids=view_id)
def test_a_view_refuses_every_truncation(case):
    _, topic, view = case
    raw, read = encode(EVENTS[TOPICS[topic].event]), view_decoder(TOPICS[topic].event, view)
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            read(raw[:cut])


@pytest.mark.parametrize("case", VIEWS, ids=view_id)
def test_a_view_refuses_another_topics_event(case):
    _, topic, view = case
    event_type = TOPICS[topic].event
    read = view_decoder(event_type, view)
    for other in [*EVENTS.values(), ALERT]:  # an alert has every field of a score, and more
        if type(other) is not event_type:
            with pytest.raises(DecodeError, match=f"not a valid {event_type.__name__}"):
                read(encode(other))


def _score(**changes) -> bytes:
    return orjson.dumps(orjson.loads(encode(EVENTS[Score])) | changes)


@pytest.mark.parametrize("changes, reason", [
    ({"score": None}, "score: Input should be a valid number"),  # read: its full rules
    ({"score": 1.5}, "score: Input should be less than or equal to 1"),
    ({"ts": 1772368215}, "must be an ISO 8601 date-time string, got int"),
    ({"decision": "maybe"}, "decision: Input should be"),  # skimmed: a literal stays a literal
    ({"reasons": {}}, "reasons: Input should be a valid list"),  # skimmed: still a list
    ({"stages": []}, "stages: Input should be a valid dictionary"),  # skimmed: still an object
    ({"card_id": 7}, "card_id: Input should be a valid string"),
    ({"schema_version": 2}, "unknown schema_version 2"),
    ({"alert_id": "a1"}, "alert_id: Extra inputs are not permitted"),
])
def test_a_view_refuses_a_wrong_field_with_the_full_rules_reason(changes, reason):
    with pytest.raises(DecodeError, match=reason):
        view_decoder(Score, monitor.ScoreSeen)(_score(**changes))


def test_a_view_does_not_read_inside_what_it_skims():
    reasons = [{"feature": "amount", "value": "high", "contribution": None, "text": 3}]
    seen = view_decoder(Score, monitor.ScoreSeen)(_score(reasons=reasons))
    assert (seen.tx_id, seen.score) == ("tx-1", 0.875)  # scoring wrote it; the reasons are not the monitor's


def test_a_view_of_a_time_in_another_zone_takes_the_full_rules_and_comes_out_utc():
    seen = view_decoder(Score, monitor.ScoreSeen)(_score(ts="2026-03-01T13:30:15.123456+01:00"))
    assert type(seen) is monitor.ScoreSeen and seen.ts == TS and seen.ts.utcoffset().total_seconds() == 0


def test_a_view_names_only_fields_of_its_event_and_only_of_internal_topics():
    class Misread(View):
        amount: float

    with pytest.raises(TypeError, match=r"Misread reads fields Score does not have: \['amount'\]"):
        view_decoder(Score, Misread)
    with pytest.raises(ValueError, match="a view of transactions.raw would skim"):
        decoder_for("transactions.raw", Misread)


def test_a_view_of_an_event_with_shared_definitions_is_refused_when_declared():
    class Seen(View):
        kind: str

    with pytest.raises(TypeError, match="not definitions"):
        view_decoder(DriftDetected, Seen)
