"""``fraudstream evaluate``: the pipeline's work in one process, without a broker, streamed.

The file's transactions and delayed labels in event-time order (:class:`~fraudstream.replay.
source.Stream`), the feature definitions computed at constant cost per event
(:mod:`fraudstream.replay.incremental`, equal to the reference the store is tested against),
the learner's ``Trainer`` and ``FraudModel``, each model scoring with the version last
published, as scoring does. Several models (*arms*, :mod:`fraudstream.replay.arms`) run on
the same stream in one pass, so they are compared on exactly the same events.

Memory follows live state, not file length: the cards' last 30 days, the merchants' hourly
counts, the vectors of transactions whose label is not due yet, the tx ids of the dedup TTL
(``dedup_ttl_s`` of event time), and 4 bytes per arm and transaction for the scores (what
the report ranks) plus 17 for time, card and label.

Where it can differ from the replay: there, scoring switches to a new version a few
milliseconds after the learner publishes it, so the transactions in flight at that moment
are scored by the previous version (``tests/integration/test_replay.py`` bounds the
difference). Validation is the part of ingest's that features need (time, card, merchant,
amount in [0, max_amount]): currency or country codes are not checked here.
"""

from __future__ import annotations

import gc
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fraudstream.replay.arms import BATCH_KINDS, ArmSpec, BatchArm, LoopArm, OnlineArm, TwinArm
from fraudstream.replay.incremental import IncrementalFeatures
from fraudstream.replay.source import StreamEvent
from services.features.definitions import FEATURE_NAMES
from shared.settings import Settings

FEATURE_SET_NAMES = {
    "base": FEATURE_NAMES,
    "shares": FEATURE_NAMES,  # the label shares are in the feature table now: the same as base
    "no_rates": tuple(n for n in FEATURE_NAMES if not n.startswith("merchant_fraud_rate_")),
}


@dataclass
class Scored:
    """One entry per scored transaction, in stream order (columns, to stay small)."""

    ts: array = field(default_factory=lambda: array("d"))
    card: array = field(default_factory=lambda: array("l"))
    label: array = field(default_factory=lambda: array("b"))
    """1 fraud, 0 genuine, -1 unknown."""
    scores: dict[str, array] = field(default_factory=dict)
    tx_ids: list[str] | None = None
    """Kept only when asked (a scores file, tests)."""
    features: dict[str, dict[str, float]] | None = None
    cards: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


def evaluate(settings: Settings, events: Iterable[StreamEvent], arms: list[ArmSpec],
             keep_ids: bool = False, keep_features: bool = False,
             on_progress: Callable[[int], None] | None = None) -> Scored:
    """Score every transaction of ``events`` with every arm; each learns each label when it arrives."""
    out = Scored(tx_ids=[] if keep_ids else None, features={} if keep_features else None)
    engine = IncrementalFeatures()
    online: list[tuple[OnlineArm, array]] = []
    batch: list[BatchArm | TwinArm | LoopArm] = []  # arms that score a batch at a time, when their model changes
    for spec in arms:
        out.scores[spec.name] = array("f")
        names = FEATURE_SET_NAMES[spec.options.get("features", "base")]
        if spec.kind in BATCH_KINDS:
            batch.append(BatchArm(spec, settings, engine.names, names, out.scores[spec.name]))
        elif spec.kind == "twin":
            batch.append(TwinArm(spec, settings, engine.names, names, out.scores[spec.name]))
        elif spec.kind == "loop":
            batch.append(LoopArm(spec, settings, engine.names, names, out.scores[spec.name]))
        else:
            online.append((OnlineArm(spec, settings, engine.names, names), out.scores[spec.name]))
    waiting: dict[str, tuple[float, list[float], str, int]] = {}  # tx_id → what its label joins to
    seen: set[str] = set()  # ingest's dedup, forgetting after its TTL (here in event time)
    remembered: deque[tuple[float, str]] = deque()
    cards, refused = out.cards, out.refused
    ts_col, card_col, label_col = out.ts, out.card, out.label
    features, ttl_s = engine.values, settings.dedup_ttl_s
    n = 0
    # River's forests copy themselves at every version and their trees may hold cycles; the
    # rest of the pass (tuples, lists, floats) holds none, so reference counting frees it all
    # and the cyclic collector would only rescan the live state, again and again (a third of
    # the time on a long file).
    with _collector(any(spec.kind in ("arf", "amf") for spec in arms)):
        for event in events:
            if event[0] == "label":
                labelled_at, tx_id, is_fraud = event[1]
                joined = waiting.pop(tx_id, None)
                if joined is None:
                    refused[UNKNOWN] = refused.get(UNKNOWN, 0) + 1
                    continue
                ts, x, merchant, card = joined
                engine.apply_label(merchant, labelled_at, is_fraud)
                for online_arm, _ in online:
                    online_arm.learn(tx_id, x, is_fraud, ts)
                for batch_arm in batch:
                    batch_arm.learn(tx_id, x, is_fraud, ts, str(card))
                continue
            row = event[1]
            tx_id = row.tx_id
            if tx_id in seen:
                refused["duplicate"] = refused.get("duplicate", 0) + 1
                continue
            seen.add(tx_id)
            remembered.append((row.ts, tx_id))
            while remembered[0][0] < row.ts - ttl_s:
                seen.discard(remembered.popleft()[1])
            x = features(tx_id, row.ts, row.card, row.merchant, row.amount, row.country, row.channel)
            for online_arm, scores in online:
                scores.append(online_arm.score(x))
            for batch_arm in batch:
                batch_arm.score_later(x, row.ts)
            card = cards.setdefault(row.card, len(cards))
            if row.label is not None:
                waiting[tx_id] = (row.ts, x, row.merchant, card)
            ts_col.append(row.ts)
            card_col.append(card)
            label_col.append(-1 if row.label is None else int(row.label))
            if out.tx_ids is not None:
                out.tx_ids.append(tx_id)
            if out.features is not None:
                out.features[tx_id] = dict(zip(engine.names, x))
            n += 1
            if on_progress and n % 20_000 == 0:
                on_progress(n)
        for batch_arm in batch:
            batch_arm.finish()
    out.versions = {arm.name: arm.versions for arm, _ in online} | {arm.name: arm.versions for arm in batch}
    return out


UNKNOWN = "label of an unknown or refused tx_id"


@contextmanager
def _collector(needed: bool) -> Iterator[None]:
    """The cyclic garbage collector off for the pass, unless ``needed``."""
    was = gc.isenabled()
    if not needed:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
