"""The dashboard as a Faust app: agents observe six topics, tables keep what the page shows.

Two stages, because the page shows totals over every partition while a Faust table key
lives in one partition:

1. one agent per input topic (``observe-*``) runs on every worker for the partitions it
   owns; it takes batches, reduces each record to an observation (``observe.py``), joins
   labels and scores by tx_id, and sends the batch's observations as one message to the
   single-partition ``feed`` topic. The join goes both ways, because a label can overtake
   its transaction (ingest → labels is one hop, ingest → features → scoring three): a score
   is kept in ``scored``, a label that came first in ``labelled``; both are keyed by tx_id
   in tumbling windows that expire after ``dashboard_label_wait_s``. Scores and labels are
   keyed by card_id, so a label and its score share a partition number, and so a worker;
2. the ``tally`` agent, on whichever worker owns that one partition, folds them into the
   ``dashboard`` table (``tally.py``). Each observation carries its source partition and
   offset and the table keeps the highest offset counted, so a batch re-delivered after a
   rebalance or crash is not counted twice, and the table's changelog moves the counts to
   the next owner, so they are not lost.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import weakref
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

import faust
from faust.streams import _current_event

from shared import metrics
from shared.codec import DecodeError, encode
from shared.events import DeadLetter
from shared.settings import Settings
from shared.topics import ALERTS, DEADLETTER, DRIFT_EVENTS, LABELS, MODEL_VERSIONS, SCORES
from services.dashboard.observe import observe
from services.dashboard.tally import SECTIONS, Tally
from services.dashboard.transport import transport_class

SERVICE = "dashboard"
INPUTS = (SCORES, ALERTS, LABELS, DEADLETTER, DRIFT_EVENTS, MODEL_VERSIONS)
JOIN_WINDOW_S = 900
"""Size of one window of the join tables: a lookup looks in every live one."""
TAKE_WITHIN_S = 0.5
log = logging.getLogger(__name__)


@contextmanager
def as_current(event: faust.types.EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event while a table is written.

    A table write goes to the changelog partition of the current event; inside a batch from
    ``take_events`` that is whichever record was buffered last, possibly another partition's,
    so each write names its own record (Faust has no public way to do this).
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def make_app(settings: Settings) -> faust.App:
    """A Faust app configured from the project's settings (same broker, prefix, timeouts)."""
    session_s = settings.session_timeout_ms / 1000
    app = faust.App(
        settings.group(SERVICE),
        broker=[f"kafka://{hostport.strip()}" for hostport in settings.kafka_bootstrap.split(",")],
        store="memory://",
        autodiscover=False,
        datadir=tempfile.mkdtemp(prefix="fraudstream-dashboard-"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=settings.create_topics,
        # Tansu answers a join after about half the session timeout: keep both short
        broker_session_timeout=session_s,
        broker_rebalance_timeout=session_s,
        broker_heartbeat_interval=min(settings.heartbeat_interval_ms / 1000, session_s / 3),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_in_thread=False,
        web_bind="0.0.0.0",
        web_port=settings.dashboard_port,
        web_host=settings.dashboard_host or socket.gethostname(),
        table_cleanup_interval=60.0,
        # One record per produced batch. Tansu answers ListOffsets(latest) with the base offset
        # of a partition's last batch + 1, not its end; Faust's table recovery reads a changelog
        # up to that "highwater", so with several records per batch a replica taking over would
        # stop short of the newest counts, or crash on a standby that has read past it
        # (ConsistencyError, seen in the rebalance test). Costs a batch per changelog write.
        producer_max_batch_size=1,
    )
    app.transport = transport_class(settings.fetch_max_wait_ms)(app.conf.broker_consumer, app)
    return app


class Dashboard:
    """The app with its topics, tables and agents declared."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.app = app = make_app(settings)
        self.feed = app.topic(f"{app.conf.id}-feed", partitions=1, internal=True,
                              key_serializer="raw", value_serializer="json", retention=timedelta(days=1))
        self.deadletter = app.topic(settings.topic(DEADLETTER), key_serializer="raw", value_serializer="raw")
        json = faust.Schema(key_serializer="json", value_serializer="json")
        self.scored = app.Table("scored", schema=json).tumbling(
            JOIN_WINDOW_S, expires=timedelta(seconds=settings.dashboard_label_wait_s))
        self.labelled = app.Table("labelled", schema=json).tumbling(
            JOIN_WINDOW_S, expires=timedelta(seconds=settings.dashboard_label_wait_s))
        self.state = app.Table("dashboard", partitions=1, schema=json)
        for logical in INPUTS:
            self._observe(logical)
        app.agent(self.feed, name="tally")(self._tally)

    def sections(self) -> dict[str, Any]:
        """This worker's copy of the dashboard table (current on the owner of its partition)."""
        return {name: self.state.get(name) for name in SECTIONS}

    def _observe(self, logical: str) -> None:
        topic = self.app.topic(self.settings.topic(logical), key_serializer="raw", value_serializer="raw")

        async def observe_batches(stream: faust.StreamT) -> None:
            async for events in stream.take_events(self.settings.batch_max, within=TAKE_WITHIN_S):
                rows = [row for event in events for row in await self._observations(logical, event)]
                if rows:
                    await self.feed.send(value=rows)

        self.app.agent(topic, name=f"observe-{logical}")(observe_batches)

    async def _observations(self, logical: str, event: faust.types.EventT) -> list[dict[str, Any]]:
        """The record's observation, and a late label's join when the record is its score."""
        msg = event.message
        try:
            row, tx_id = observe(logical, msg.partition, msg.offset, int(msg.timestamp * 1000), msg.value)
        except DecodeError as exc:
            await self._dead_letter(msg, str(exc))
            return []
        with as_current(event):
            if row["k"] == "score":
                self.scored[tx_id] = row["s"]
                is_fraud = self._find(self.labelled, tx_id, event)
                if is_fraud is not None:
                    joined = {"k": "joined", "src": f"{row['src']}/joined", "fraud": is_fraud}
                    return [row, row | joined]
            elif row["k"] == "label":
                row["s"] = self._find(self.scored, tx_id, event)
                if row["s"] is None:
                    self.labelled[tx_id] = row["fraud"]
        return [row]

    def _find(self, table: faust.types.tables.WindowWrapperT, tx_id: str, event: faust.types.EventT) -> Any:
        """The value under tx_id in the newest live window that has one (None if none has).

        Looked up in the table's local store, not through ``WindowSet.delta``: most scores have
        no label waiting, and a miss there costs an exception per window (~30 µs each).
        """
        stored, window, now = table.table.data, table.table.window, event.message.timestamp
        for back in range(0, self.settings.dashboard_label_wait_s + JOIN_WINDOW_S, JOIN_WINDOW_S):
            key = (tx_id, window.delta(now, back))
            if key in stored:
                return stored[key]
        return None

    async def _dead_letter(self, msg: faust.types.Message, error: str) -> None:
        metrics.DEADLETTERS.labels(SERVICE, error.split(":", 1)[0]).inc()
        if msg.topic == self.settings.topic(DEADLETTER):
            # dead-lettering a dead letter would feed this agent its own output forever
            log.warning("undecodable dead letter at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, error)
            return
        letter = DeadLetter(service=SERVICE, topic=msg.topic, partition=msg.partition, offset=msg.offset,
                            key=msg.key, payload=msg.value or b"", error=error)
        await self.deadletter.send(key=msg.key, value=encode(letter))

    async def _tally(self, stream: faust.StreamT) -> None:
        async for rows in stream:
            tally = Tally(self.sections())
            for name in tally.apply(rows, self.settings.alert_threshold):
                self.state[name] = tally.sections[name]
