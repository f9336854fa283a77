"""The learner stays bounded under constant retrains: what it holds after many labels and
retrains is what one window holds, not what every retrain saw (the soak's learner grew
~+286 MiB an hour when every decision was kept with its challenger and window)."""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import BuiltinFunctionType, FunctionType, ModuleType

from services.learner.retrain import Example
from services.learner.startup import assemble
from services.learner.trainer import Trainer
from services.model.fraud_model import FraudModel
from shared.events import RetrainRequested
from shared.settings import Settings
from tests.unit.test_retrain import Store

WINDOW = 300


class Vector(dict):
    """A feature vector that can be watched with a weak reference (a plain dict cannot)."""


def reachable(root: object) -> Counter[type]:
    """Instances reachable from ``root`` by type, not walking into classes, modules or functions
    (which lead to every global)."""
    seen, todo, found = {id(root)}, [root], Counter[type]()
    while todo:
        o = todo.pop()
        found[type(o)] += 1
        for r in gc.get_referents(o):
            if id(r) not in seen and not isinstance(r, type | ModuleType | FunctionType | BuiltinFunctionType):
                seen.add(id(r))
                todo.append(r)
    return found


def test_after_3000_labels_and_10_retrains_the_learner_holds_one_window_of_vectors():
    settings = Settings(genuine_sample_rate=1.0, retrain_window_labels=WINDOW)  # every label is learned
    trainer = Trainer(FraudModel(), 1.0, settings.alert_threshold, WINDOW)
    learner = assemble(settings, None, None, Store(), trainer, history=[])
    rng, t0 = random.Random(5), datetime(2026, 3, 1, tzinfo=UTC)
    alive: list[weakref.ref[Vector]] = []
    outcomes = []
    for i in range(3000):
        fraud = rng.random() < 0.1
        x = Vector(amount=rng.gauss(400 if fraud else 60, 80), count_1h=float(rng.randrange(4, 9) if fraud else 2))
        alive.append(weakref.ref(x))
        learner.lineage.learn([(f"tx-{i}", x, fraud, t0 + timedelta(seconds=i), None)])
        if i % WINDOW == WINDOW - 1:
            asyncio.run(learner.verdicts.answer(RetrainRequested(reason="drift", requested_by="monitor")))
            outcomes.append(learner.verdicts.decisions[-1].outcome)
    del x
    gc.collect()
    assert outcomes == ["reject"] * 10  # every retrain trained a challenger, and the champion stayed
    # the last retrain came right after the last label: its window is the trainer's window
    held = [ref for ref in alive if ref() is not None]
    assert len(held) == WINDOW and held == alive[-WINDOW:]
    assert len(learner.verdicts.decisions) == 1
    held_by_learner = reachable(learner)
    assert held_by_learner[Vector] == WINDOW
    assert held_by_learner[Example] == 2 * WINDOW  # the trainer's window, and the last decision's rescored
    assert held_by_learner[FraudModel] == 2  # the champion, and the last rejected challenger
