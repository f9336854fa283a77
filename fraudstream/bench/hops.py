"""What the monitor and the learner pay per event they read, measured in process.

``python -m fraudstream.bench.hops [EVENTS]`` replays EVENTS simulated enriched transactions
(features from the reference implementation) and a score for each (three reasons, as
scoring writes them), in batches of 500 as the runner hands them over, through each
service's own boundary: the monitor's decode and handler, the learner's decode (its
handler needs Redis). CPU time per event in (``time.process_time``), best of three passes,
for the inputs read in full (by shape) or as the services' views, with the cyclic garbage
collector as Python starts it or with the built service frozen (``shared/runner.py``).
Kafka is left out: what the broker client costs is the same either way.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import sys
import time
from collections.abc import Mapping

from aiokafka.structs import ConsumerRecord

from fraudstream.bench.workload import enriched_stream
from services.learner import service as learner
from services.monitor import service as monitor
from services.monitor.detectors import MonitorConfig
from shared.boundary import Boundary
from shared.codec import decode, encode
from shared.events import EnrichedTransaction, Reason, Score
from shared.settings import Settings
from shared.topics import SCORES, TRANSACTIONS_ENRICHED
from shared.trusted import View

SETTINGS = Settings(topic_prefix="bench-hops.")
BATCH = 500


def records(events: int, seed: int = 5) -> list[ConsumerRecord]:
    """Each enriched transaction followed by its score, as one partition would hold them."""
    rng, out = random.Random(seed), []
    for offset, enriched in enumerate(itertools.islice(enriched_stream(), events)):
        tx = decode(enriched.value, EnrichedTransaction).transaction
        features = decode(enriched.value, EnrichedTransaction).features
        top = sorted(features, key=lambda name: -abs(features[name]))[:3]
        score = Score(tx_id=tx.tx_id, card_id=tx.card_id, ts=tx.ts, score=rng.random() ** 4, decision="approve",
                      model_version="bench-v1",
                      reasons=[Reason(feature=name, value=features[name], contribution=0.1,
                                      text=f"{name} {features[name]:.3g}, usually lower") for name in top],
                      stages={"produced": 1.7e9, "received": 1.7e9, "enriched": 1.7e9, "scored": 1.7e9})
        for topic, value in ((TRANSACTIONS_ENRICHED, enriched.value), (SCORES, encode(score))):
            out.append(ConsumerRecord(SETTINGS.topic(topic), 0, offset, 0, 0, tx.card_id.encode(), value, None, 0, 0,
                                      []))
    return out


def monitor_us(batch: list[ConsumerRecord], views: Mapping[str, type[View]]) -> tuple[float, float]:
    """CPU µs per event of the monitor's boundary and of its handler, over the whole stream."""
    handler = monitor.Monitor(SETTINGS, MonitorConfig.from_settings(SETTINGS))
    boundary = Boundary(monitor.SERVICE, SETTINGS, monitor.INPUTS, views=views)
    decoding = handling = 0.0

    async def run() -> None:
        nonlocal decoding, handling
        for start in range(0, len(batch), BATCH):
            t0 = time.process_time()
            inbound, letters = boundary.decode(batch[start:start + BATCH])
            t1 = time.process_time()
            await handler(inbound)
            decoding, handling = decoding + t1 - t0, handling + time.process_time() - t1
            assert not letters, letters

    asyncio.run(run())
    return 1e6 * decoding / len(batch), 1e6 * handling / len(batch)


def learner_us(batch: list[ConsumerRecord], views: Mapping[str, type[View]]) -> float:
    enriched = [r for r in batch if r.topic == SETTINGS.topic(TRANSACTIONS_ENRICHED)]
    boundary = Boundary(learner.SERVICE, SETTINGS, learner.INPUTS, views=views)
    started = time.process_time()
    for start in range(0, len(enriched), BATCH):
        inbound, letters = boundary.decode(enriched[start:start + BATCH])
        assert not letters, letters
    return 1e6 * (time.process_time() - started) / len(enriched)


def main(events: int = 6000) -> None:
    batch = records(events)
    print(f"{events:,} enriched transactions and {events:,} scores, batches of {BATCH}; CPU µs per event in, "
          "best of 3")
    for frozen in (False, True):
        if frozen:
            gc.collect()
            gc.freeze()  # what run_service does once the service is built
        for label, monitor_views, learner_views in (("in full (by shape)", {}, {}),
                                                    ("as views", monitor.SPEC.views, learner.SPEC.views)):
            runs = [monitor_us(batch, monitor_views) for _ in range(3)]
            decoding, handling = min(runs, key=sum)
            learning = min(learner_us(batch, learner_views) for _ in range(3))
            print(f"  gc {'frozen ' if frozen else 'default'}  {label:<19} monitor: decode {decoding:5.1f} + handler "
                  f"{handling:4.1f} = {decoding + handling:5.1f}   learner decode {learning:5.1f}")
    gc.unfreeze()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6000)
