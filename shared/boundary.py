"""Where consumed bytes become events: decoded once, by the topic table, before any handler.

Each record is decoded as its topic's event type (``TOPICS[name].event``): in full on a
topic that people or other systems write to, by shape on one only our services write to
(``shared/trusted.py``: they were validated in full once, by ingest). One that does
not decode (malformed JSON, a wrong field, a tombstone, zero bytes) is dead-lettered here
with its reason and its topic/partition/offset, and the handler never sees it. Handlers
get :class:`Inbound` items and route them by topic through a table (:func:`dispatch`).

A service that reads little of a busy internal topic names a *view* of it (``views``: topic
→ a :class:`shared.trusted.View`): its events then come as that view, the fields it reads
decoded and the rest skimmed, refused on the same grounds (``shared/trusted.py``).

>>> from aiokafka import ConsumerRecord
>>> from shared.settings import Settings
>>> s = Settings(topic_prefix="doc.")
>>> boundary = Boundary("doc", s, ("model.retrain",))
>>> good = b'{"request_id": "r1", "reason": "ops", "requested_at": "2026-01-01T00:00:00Z"}'
>>> records = [ConsumerRecord("doc.model.retrain", 0, n, 0, 0, None, v, None, 0, 0, [])
...            for n, v in enumerate([good, None, b""])]
>>> inbound, letters = boundary.decode(records)
>>> [(i.topic, i.event.request_id) for i in inbound]
[('model.retrain', 'r1')]
>>> [letter.topic for letter in letters]
['doc.deadletter', 'doc.deadletter']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import ConsumerRecord
from pydantic import BaseModel

from shared import metrics
from shared.codec import DecodeError, decode, encode
from shared.events import DeadLetter, Event
from shared.kafka import Out
from shared.settings import Settings
from shared.topics import DEADLETTER, TOPICS
from shared.trusted import View, trusting_decoder, view_decoder

E = TypeVar("E", bound=BaseModel | View | None)  # None: a raw service's undecoded record


@dataclass(frozen=True, slots=True)
class Inbound(Generic[E]):
    """One consumed event with where it came from: ``topic`` is the table's name (no prefix)."""

    topic: str
    record: ConsumerRecord
    event: E


def dead_letter(settings: Settings, service: str, record: ConsumerRecord, error: str) -> Out:
    """The original bytes, where they came from and why they were refused."""
    metrics.DEADLETTERS.labels(service, error.split(":", 1)[0]).inc()
    letter = DeadLetter(
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value if record.value is not None else b"",
        error=error,
    )
    return Out(settings.topic(DEADLETTER), record.key, encode(letter))


SERVICES_WRITING = frozenset({"ingest", "features", "scoring", "learner", "monitor"})


def written_by_services(name: str) -> bool:
    """True when only our services produce the topic (``model.retrain`` has ops too).

    >>> written_by_services("transactions.enriched"), written_by_services("transactions.raw")
    (True, False)
    >>> written_by_services("model.retrain")
    False
    """
    return set(TOPICS[name].producer.split(", ")) <= SERVICES_WRITING


def decoder_for(name: str, view: type[View] | None = None) -> Callable[[bytes | None], Event | View]:
    """The topic's decoder: by shape (or as ``view``) on a topic only services write, in full otherwise."""
    event_type = TOPICS[name].event
    if view is not None:
        if not written_by_services(name):
            raise ValueError(f"a view of {name} would skim what people or other systems wrote: read it in full")
        return view_decoder(event_type, view)
    if written_by_services(name):
        return trusting_decoder(event_type)
    return lambda raw: decode(raw, event_type)


class Boundary:
    """Decodes a service's consumed records by the topic table; ``raw`` hands bytes over;
    ``views`` names the topics read as a :class:`View` (the rest are read whole)."""

    def __init__(self, service: str, settings: Settings, inputs: Iterable[str], raw: bool = False,
                 views: Mapping[str, type[View]] | None = None):
        self.service, self.settings, self.raw = service, settings, raw
        views = views or {}
        self.topics = {settings.topic(name): (name, decoder_for(name, views.get(name))) for name in inputs}

    def decode(self, records: list[ConsumerRecord]) -> tuple[list[Inbound], list[Out]]:
        """The batch's events in consumed order, and the dead letters of what did not decode."""
        inbound: list[Inbound] = []
        letters: list[Out] = []
        for record in records:
            name, decode_event = self.topics[record.topic]
            if self.raw:
                inbound.append(Inbound(name, record, None))
                continue
            try:
                inbound.append(Inbound(name, record, decode_event(record.value)))
            except DecodeError as exc:
                letters.append(dead_letter(self.settings, self.service, record, f"malformed: {exc}"))
        return inbound, letters


Route = Callable[[Inbound], Iterable[Out] | None]


def dispatch(routes: Mapping[str, Route], batch: list[Inbound]) -> list[Out]:
    """Hand each event to its topic's route, in consumed order; collect what routes return.

    Routes take one event; a handler that works per batch collects in its routes and does
    the batch's work after this returns.
    """
    outs: list[Out] = []
    for item in batch:
        produced = routes[item.topic](item)
        if produced:
            outs.extend(produced)
    return outs
