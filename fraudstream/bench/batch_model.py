"""What the batch kind (``hgb``) costs next to the online linear one: scoring a batch, its
reasons, and the learner's refit.

``python -m fraudstream.bench.batch_model`` simulates traffic, computes its features with the
reference definition, trains the linear model online and fits the trees on the first 5,000
labels, then prints the best per-transaction time over repeated batches of 500 (the minimum
is what the code costs; on a shared machine longer averages measure the neighbours too), on
one OpenMP thread as the services run it and on scikit-learn's default (a thread per core).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial

from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features.definitions import FeatureResult
from services.features.reference import ReferenceFeatures
from services.model import batch
from services.model.fraud_model import FraudModel
from services.model.reasons import explain_many
from shared.events import Label, Transaction

TRAIN, BATCH, REPEATS = 5000, 500, 5


def labelled(n_events: int = 8000) -> list[tuple[dict[str, float], bool]]:
    reference, vectors, truth = ReferenceFeatures(), [], {}
    for item in simulate(SimulatorConfig(seed=1, n_cards=2000, n_merchants=200, fraud_rate=0.02), n_events):
        if isinstance(item.event, Transaction):
            result = reference.apply(item.event)
            if isinstance(result, FeatureResult):
                vectors.append((item.event.tx_id, result.features))
        elif isinstance(item.event, Label):
            truth[item.event.tx_id] = item.event.is_fraud
    return [(x, truth.get(tx_id, False)) for tx_id, x in vectors]


def best_us(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * min(times) / n


def main() -> None:
    data = labelled()
    train, xs = data[:TRAIN], [x for x, _ in data[TRAIN:TRAIN + BATCH]]
    online = FraudModel()
    for x, y in train:
        online.learn(x, y)
    print(f"linear: score {best_us(lambda: online.score_many(xs), len(xs)):7.1f} µs/tx, "
          f"reasons {best_us(lambda: explain_many(online, xs), len(xs)):7.1f} µs/tx")
    threads = batch.one_thread
    for name, limit in (("one thread", threads), ("default threads", contextlib.nullcontext)):
        batch.one_thread = limit  # what fit and score_many enter
        try:
            start = time.perf_counter()
            model = batch.fit([x for x, _ in train], [y for _, y in train], [1.0] * len(train), online)
            fit_s = time.perf_counter() - start
            score_us = best_us(partial(model.score_many, xs), len(xs))
            reasons_us = best_us(partial(explain_many, model, xs), len(xs))
            print(f"hgb, {name}: score {score_us:7.1f} µs/tx, reasons {reasons_us:7.1f} µs/tx, "
                  f"fit on {len(train)} labels {fit_s:.2f} s ({len(xs)} a batch, {len(xs[0])} features)")
        finally:
            batch.one_thread = threads


if __name__ == "__main__":
    main()
