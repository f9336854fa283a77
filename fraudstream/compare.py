"""Model-choice experiment: prequential runs of the candidate models on simulated traffic.

``python -m fraudstream.compare [n_transactions] [seed]`` prints, per model: average
precision, ROC AUC and log loss of the scores every transaction got, µs of CPU per event
(score every transaction, learn every label) and the pickled size.

The stream is the project's own: ``fraudstream.simulator`` traffic (0.7 % fraud in four
patterns, labels hours late, 10 % of genuine transactions labelled) with the features of
``services.features.reference`` (the same definitions the feature service computes). A
transaction is scored when it happens and learned from when its label arrives, as in
production; every score is judged against the simulator's ground truth.
"""

from __future__ import annotations

import pickle
import sys
import time
from datetime import timedelta

from fraudstream.simulator.traffic import SimulatorConfig, simulate
from services.features.definitions import Refused
from services.features.reference import ReferenceFeatures
from services.model.fraud_model import FraudModel
from services.model.metrics import Prequential
from shared.events import Transaction

Event = tuple[str, str, dict[str, float] | None, bool]
"""("tx" or "label", tx_id, features of a transaction, is_fraud)"""


def labelled_stream(n: int, seed: int = 7) -> tuple[list[Event], float]:
    """Transactions with their features and the labels, in arrival order; and the share of
    genuine transactions that get a label.

    >>> events, share = labelled_stream(300, seed=1)
    >>> sum(kind == "tx" for kind, *_ in events), share
    (300, 0.1)
    """
    config = SimulatorConfig(seed=seed, n_cards=5_000, n_merchants=500, label_delay_mean=timedelta(hours=6))
    features = ReferenceFeatures()
    events: list[Event] = []
    for emission in simulate(config, n_transactions=n):
        event = emission.event
        if isinstance(event, Transaction):
            applied = features.apply(event)
            if isinstance(applied, Refused):  # the simulator emits in event time: never too late
                raise ValueError(f"simulated transaction {event.tx_id} refused: {applied.reason}")
            events.append(("tx", event.tx_id, applied.features, emission.fraud_pattern is not None))
        else:
            features.apply_label(event)
            events.append(("label", event.tx_id, None, event.is_fraud))
    return events, config.genuine_label_share


def run(model: FraudModel, events: list[Event], genuine_weight: float = 1.0) -> dict[str, float]:
    """Score each transaction, learn each label: the metrics over all transactions, the
    average precision over the second half (once models have warmed up), µs/event, size."""
    n = sum(kind == "tx" for kind, *_ in events)
    tracker, second_half, cpu = Prequential(window=n), Prequential(window=n // 2), 0.0
    waiting: dict[str, dict[str, float]] = {}
    for kind, tx_id, x, is_fraud in events:
        start = time.process_time()
        if kind == "tx":
            assert x is not None  # a transaction always carries its features
            score = model.score(x)
            waiting[tx_id] = x
        else:
            model.learn(waiting.pop(tx_id), is_fraud, 1.0 if is_fraud else genuine_weight)
        cpu += time.process_time() - start
        if kind == "tx":
            tracker.update(score, is_fraud)
            second_half.update(score, is_fraud)
    return {
        **tracker.as_dict(),
        "ap_second_half": second_half.as_dict()["average_precision"],
        "us_per_event": cpu / len(events) * 1e6,
        "pickled_kb": len(pickle.dumps(model)) / 1024,
    }


def table(title: str, rows: dict[str, tuple[dict, float]], events: list[Event]) -> None:
    print(f"\n{title:<22}{'AP':>7}{'AP 2nd half':>13}{'ROC AUC':>9}{'log loss':>10}{'µs/event':>10}"
          f"{'pickled KB':>12}")
    for name, (params, genuine_weight) in rows.items():
        r = run(FraudModel(**params), events, genuine_weight)
        print(f"{name:<22}{r['average_precision']:>7.3f}{r['ap_second_half']:>13.3f}{r['roc_auc']:>9.3f}"
              f"{r['log_loss']:>10.4f}{r['us_per_event']:>10.1f}{r['pickled_kb']:>12.1f}")


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 50_000
    seed = int(argv[1]) if len(argv) > 1 else 7
    events, rate = labelled_stream(n, seed)
    frauds = sum(y for kind, _, _, y in events if kind == "tx")
    labels = sum(kind == "label" for kind, *_ in events)
    print(f"{n} transactions ({frauds} fraud), {labels} labels, seed {seed}")
    table("model", {  # name: (model parameters, weight of a genuine label)
        "linear": (dict(kind="linear", genuine_rate=rate), 1.0),
        "arf (3 trees)": (dict(kind="arf", n_models=3, genuine_rate=rate), 1.0),
        "arf (10 trees)": (dict(kind="arf", n_models=10, genuine_rate=rate), 1.0),
        "amf (5 trees)": (dict(kind="amf", n_models=5, genuine_rate=rate), 1.0),
    }, events)
    table("imbalance (linear)", {  # genuine labels are 10 % of genuine transactions
        "sampled, as is": (dict(kind="linear"), 1.0),
        "sampled, × 1/rate": (dict(kind="linear"), 1 / rate),
        "sampled, corrected": (dict(kind="linear", genuine_rate=rate), 1.0),
    }, events)


if __name__ == "__main__":
    main(sys.argv[1:])
