"""Artifacts of old versions go: the latest ``artifacts_kept`` announcements keep theirs, and
the champion's and the shadowed challenger's stay whatever their age (``Publisher._retire``).
The soak found every snapshot kept forever: 402 artifacts, 110 MiB of Redis in 36 minutes."""

from __future__ import annotations

import asyncio

from services.learner.trainer import Trainer
from services.model.fraud_model import FraudModel
from shared.settings import Settings
from tests.unit.test_retrain import Store, assemble


def test_versions_past_the_kept_ones_are_retired_but_the_champion_and_the_shadow():
    settings = Settings(artifacts_kept=3, artifact_grace_s=60)
    store = Store()
    trainer = Trainer(FraudModel(), 0.2, settings.alert_threshold)
    learner = assemble(settings, None, None, store, trainer, history=[])
    publisher, lineage = learner.publisher, learner.lineage

    async def announce(status: str) -> str:
        event = await publisher.announce(trainer.model, parent=lineage.version, reason="periodic", status=status,
                                         training_window=trainer.window())
        if status == "champion":
            lineage.version = event.version
        return event.version

    async def run() -> None:
        await announce("champion")                    # v1, the champion until v6
        lineage.shadow.version = await announce("challenger")  # v2, shadowed throughout
        for _ in range(3):
            await announce("rejected")                # v3..v5
        assert store.retired == {}                    # v1 and v2 fell out, but serve and are shadowed
        await announce("champion")                    # v6 (the lineage follows it once announced)
        assert store.retired == {"mem:v3": 60}
        await announce("champion")                    # v7: v1 no longer serves
        assert store.retired == {"mem:v1": 60, "mem:v3": 60, "mem:v4": 60}
        lineage.shadow.version = None
        await announce("rejected")                    # v8: the shadow stopped
        assert sorted(store.retired) == ["mem:v1", "mem:v2", "mem:v3", "mem:v4", "mem:v5"]

    asyncio.run(run())
