"""``fraudstream retrain --wait`` on the real broker: the verdict is printed when the learner
announces one; a refusal (announced nowhere) is said as such when the wait times out."""

from __future__ import annotations

import asyncio

import pytest

from services.learner import service as learner
from shared.codec import decode, encode
from shared.events import ModelVersionPublished, RetrainRequested
from shared.topics import MODEL_RETRAIN, MODEL_VERSIONS
from tests.cli.helpers import env_of, fraudstream_async
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


async def test_a_refused_retrain_is_reported_when_the_wait_runs_out(settings, start_service):
    start_service(learner.run)  # no labels learned: it refuses any retrain (too few labels)
    ran = await fraudstream_async("retrain", "--reason", "ops check", "--wait", "--timeout", "8",
                                  env=env_of(settings))
    assert ran.code == 1, ran.out + ran.err
    assert "no verdict on model.versions within 8s" in ran.err
    assert "refused by the learner" in ran.err


async def test_the_verdict_is_printed_once_announced(settings):
    async def learner_answers() -> None:
        # What the learner announces for a rejected challenger (services/learner/verdicts.py).
        async with Collector(settings, MODEL_RETRAIN) as seen:
            await seen.until(lambda c: len(c.of(MODEL_RETRAIN)) >= 1)
        decode(seen.of(MODEL_RETRAIN)[0].value, RetrainRequested)
        verdict = ModelVersionPublished(version="v4", parent="v3", reason="rejected", status="rejected",
                                        artifact_ref="redis://v4", artifact_sha256="0" * 64,
                                        metrics={"average_precision": 0.41})
        await produce(settings, MODEL_VERSIONS, [(b"v4", encode(verdict))])

    answering = asyncio.create_task(learner_answers())
    ran = await fraudstream_async("retrain", "--reason", "ops check", "--wait", "--timeout", "30",
                                  env=env_of(settings))
    await answering
    assert ran.code == 0, ran.out + ran.err
    assert "MODEL  v4 REJECTED" in ran.out
    assert "rejected: v4 did not beat v3" in ran.out
