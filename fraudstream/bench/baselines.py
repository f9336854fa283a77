"""The yardsticks ``fraudstream bench`` holds the pipeline against, on the same events.

* :func:`passthrough` — the broker's ceiling for a Kafka service here: the services' own
  loop (``shared/runner.py``: ``getmany`` → ``Sender``, i.e. ``create_batch``/``send_batch``
  per partition → wait for the acks → commit) with nothing inside it, copying
  ``transactions.raw`` to :data:`COPY_TO` byte for byte.
* :func:`naive` — the whole job written the obvious way, in one process, one event at a
  time: validate (pydantic, ingest's rules), one Redis round trip for the real features
  (the project's Lua scripts through ``FeatureStore`` with a batch of one), River's
  ``predict_proba_one`` on the model pipeline, ``send_and_wait`` the score. It does less
  than the pipeline (no dedup, labels, reasons, learner or monitor), never more.
* :func:`~fraudstream.bench.fused.fused` — the same job a batch at a time in one process
  (``fused.py``): what a user would write instead of our services.

Each runs like a service, ``run(settings, stop)``; ``python -m fraudstream.bench.baselines
passthrough|naive|fused`` runs one as its own process (settings from the environment).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager

from aiokafka import ConsumerRecord

from shared import health_server, metrics
from shared.codec import encode
from shared.events import Score, utcnow
from shared.kafka import Out, make_consumer, make_producer
from shared.redis import make_redis
from shared.runner import Inbound, ServiceSpec, dead_letter, run_service
from shared.settings import Settings
from shared.topics import SCORES, TRANSACTIONS_RAW
from services.features.store import FeatureStore, Refused
from services.ingest.validate import Limits, Rejected, parse_transaction
from services.model.fraud_model import FraudModel
from services.scoring.service import decide
from fraudstream.bench.fused import fused

COPY_TO = SCORES
"""Where the pass-through writes: any topic with the input's partitions will do."""
BASELINES = ("passthrough", "naive", "fused")
__all__ = ["BASELINES", "COPY_TO", "fused", "naive", "passthrough"]


class Copy:
    """A batch handler that changes nothing: each record out as it came in."""

    def __init__(self, settings: Settings):
        self.target = settings.topic(COPY_TO)

    async def __call__(self, batch: list[Inbound]) -> list[Out]:
        return [Out(self.target, i.record.key, i.record.value, i.record.timestamp) for i in batch]


@asynccontextmanager
async def _copying(clients, settings: Settings, stop: asyncio.Event):
    yield Copy(settings)


async def passthrough(settings: Settings, stop: asyncio.Event) -> None:
    # raw: the broker's pass-through rate, so nothing is decoded
    await run_service(ServiceSpec("bench-passthrough", (TRANSACTIONS_RAW,), _copying, raw=True), settings, stop)


async def naive(settings: Settings, stop: asyncio.Event) -> None:
    consumer = make_consumer(settings, TRANSACTIONS_RAW, group=settings.group("bench-naive"),
                             enable_auto_commit=True)
    # aiokafka's default linger: the project's 5 ms would cap send_and_wait near 100/s, not the loop
    producer, redis = make_producer(settings, linger_ms=0), make_redis(settings)
    store, limits = FeatureStore(redis, settings), Limits.from_settings(settings)
    model = FraudModel(genuine_rate=settings.genuine_sample_rate)
    target = settings.topic(COPY_TO)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for record in batch:
                    topic, value = await _score_one(record, settings, store, limits, model, target)
                    await producer.send_and_wait(topic, value, key=record.key)
                    metrics.EVENTS_OUT.labels("bench-naive", topic).inc()
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()


async def _score_one(record: ConsumerRecord, settings: Settings, store: FeatureStore, limits: Limits,
                     model: FraudModel, target: str) -> tuple[str, bytes]:
    try:
        tx = parse_transaction(record.value, limits, utcnow())
    except Rejected as exc:
        letter = dead_letter(settings, "bench-naive", record, str(exc))
        return letter.topic, letter.value
    (features,) = await store.apply([tx])
    if isinstance(features, Refused):  # too late for its card's windows, as the features service says
        letter = dead_letter(settings, "bench-naive", record, features.reason)
        return letter.topic, letter.value
    p = model.river.predict_proba_one(features.features).get(True, 0.0)
    score = Score(tx_id=tx.tx_id, card_id=tx.card_id, ts=tx.ts, score=p, decision=decide(p, settings),
                  model_version="naive", reasons=[])
    return target, encode(score)


if __name__ == "__main__":
    from shared.lifecycle import configure_logging, run_until_signal

    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in BASELINES:
        sys.exit(f"usage: python -m fraudstream.bench.baselines {'|'.join(BASELINES)}")
    env_settings = Settings()
    configure_logging(env_settings)
    health_server.serve(env_settings.metrics_port)
    runs = {"passthrough": passthrough, "naive": naive, "fused": fused}
    run_until_signal(lambda stop: runs[which](env_settings, stop))
