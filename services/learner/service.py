"""learner wiring: the single writer of models. It learns online from delayed labels joined
to the features each transaction was scored with, publishes versions every N labels or T
seconds, and on a ``model.retrain`` request trains a challenger and promotes or rejects it.

- ``learner``: the batch handler (routes each topic to its part);
- ``joining``: labels joined to stored feature vectors and learned; ``once``: each tx_id
  learned at most once per lineage (a label re-published upstream is skipped);
- ``maturity``: implicit genuine labels for transactions nobody labelled;
- ``lineage``: the model line in training, following ``model.versions``; ``shadow``: a
  challenger learning beside it; ``trainer``: online learning with prequential metrics;
- ``retrain_queue``: requests waiting for labels since a drift; ``verdicts`` answers them
  with ``retrain`` (pure);
- ``refits``: the batch challenger (``retrain_batch``, pure) fitted on schedule in event
  time and promoted or rejected against the champion;
- ``publishing``: versioned snapshots; offsets are committed only when one is published,
  so a restart resumes from the last snapshot and relearns exactly what it lacks;
- ``startup``: resume from the champion, the queue and the challenger;
- ``seen``: what it reads of an enriched transaction (the rest is skimmed, not decoded).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime

from services.learner.seen import EnrichedSeen
from services.learner.startup import start_learner
from shared.codec import encode
from shared.events import RetrainRequested
from shared.runner import Clients, ServiceSpec, run_service
from shared.settings import Settings
from shared.topics import LABELS, MODEL_RETRAIN, MODEL_VERSIONS, TRANSACTIONS_ENRICHED

SERVICE = "learner"
INPUTS = (LABELS, TRANSACTIONS_ENRICHED, MODEL_VERSIONS, MODEL_RETRAIN)


@asynccontextmanager
async def build(clients: Clients, settings: Settings, stop: asyncio.Event):
    yield await start_learner(settings, clients.redis)


SPEC = ServiceSpec(SERVICE, INPUTS, build, views={TRANSACTIONS_ENRICHED: EnrichedSeen})


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await run_service(SPEC, settings, stop)


async def request_retrain(settings: Settings, reason: str, requested_by: str = "ops",
                          drift_event_id: str | None = None, since: datetime | None = None) -> RetrainRequested:
    """Ask the learner for a challenger (what ``fraudstream retrain`` does); with ``since``,
    one trained on labels of transactions from then on, once enough are in."""
    from shared.kafka import publish_one

    request = RetrainRequested(reason=reason, requested_by=requested_by, drift_event_id=drift_event_id, since=since)
    await publish_one(settings, MODEL_RETRAIN, request.request_id.encode(), encode(request))
    return request
