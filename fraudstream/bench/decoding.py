"""What one hop pays to read an event: the full rules against the shape check of internal
topics, and against the views the monitor and the learner read (only the fields they use).

``python -m fraudstream.bench.decoding`` prints, per event type and then per service's view,
the best per-decode time over many short repeats (the minimum is what the code costs; on a
shared machine every longer average measures the neighbours too).
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

from shared.codec import decode, encode
from shared.events import EnrichedTransaction, Label, Reason, Score, Transaction
from shared.topics import TOPICS
from shared.trusted import trusting_decoder, view_decoder

TS = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
TX = Transaction(tx_id="tx-0000000001", ts=TS, card_id="card-000123", merchant_id="m-0042", amount=12.5,
                 currency="EUR", channel="ecom", mcc="5411", country="FR", device_id="d-1", lat=48.85, lon=2.35)
EVENTS = [
    TX,
    Label(tx_id="tx-0000000001", card_id="card-000123", is_fraud=False, labelled_at=TS),
    EnrichedTransaction(transaction=TX, features={f"feature_{i}": i * 1.5 for i in range(28)},
                        feature_set_version="v3", freshness_s={"card": 1.0, "merchant": 2.0},
                        stages={"produced": 1.7e9, "received": 1.7e9, "enriched": 1.7e9}),
    Score(tx_id="tx-0000000001", card_id="card-000123", ts=TS, score=0.3, decision="approve", model_version="v1",
          reasons=[Reason(feature=f"feature_{i}", value=1.0, contribution=0.2, text=f"feature_{i} is high")
                   for i in range(3)],
          stages={"received": 1.7e9, "enriched": 1.7e9, "scored": 1.7e9}),
]


def best_us(fn, number: int = 200, repeat: int = 150) -> float:
    return 1e6 * min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    for event in EVENTS:
        raw, kind = encode(event), type(event)
        by_shape = trusting_decoder(kind)
        full_us = best_us(lambda raw=raw, kind=kind: decode(raw, kind))
        shape_us = best_us(lambda raw=raw, read=by_shape: read(raw))
        print(f"{kind.__name__:<20} {len(raw):4d} bytes  full rules {full_us:5.1f} µs  by shape {shape_us:5.1f} µs")
    from services.learner import service as learner
    from services.monitor import service as monitor

    by_type = {type(event): event for event in EVENTS}
    for spec in (monitor.SPEC, learner.SPEC):
        for topic, view in spec.views.items():
            kind = TOPICS[topic].event
            raw, by_shape, seen = encode(by_type[kind]), trusting_decoder(kind), view_decoder(kind, view)
            shape_us = best_us(lambda raw=raw, read=by_shape: read(raw))
            view_us = best_us(lambda raw=raw, read=seen: read(raw))
            print(f"{spec.name + ' ' + topic:<30} by shape {shape_us:5.1f} µs  as {view.__name__} {view_us:5.1f} µs")


if __name__ == "__main__":
    main()
