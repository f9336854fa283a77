"""scoring on the real broker and Redis: a corrupt artifact is refused and scoring goes on;
a good version is hot-swapped in and stamped on every later score."""

from __future__ import annotations

import pytest

from services.model.artifacts import dump, make_store
from services.model.fraud_model import FraudModel
from services.scoring import service as scoring
from shared.codec import decode, encode
from shared.events import EnrichedTransaction, ModelVersionPublished, Score, Transaction
from shared.topics import MODEL_VERSIONS, SCORES, TRANSACTIONS_ENRICHED
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration


def enriched(i: int) -> EnrichedTransaction:
    tx = Transaction(tx_id=f"t{i}", ts="2026-11-01T10:00:00Z", card_id=f"c{i % 7}", merchant_id="m1", amount=10.0 + i,
                     currency="EUR", channel="pos", mcc="5411", country="FR")
    return EnrichedTransaction(transaction=tx, features={"amount": 10.0 + i, "card_tx_count_1h": float(i % 5)},
                               feature_set_version="test", stages={"received": 1.0, "enriched": 2.0})


def version(name: str, ref: str, sha: str) -> bytes:
    return encode(ModelVersionPublished(version=name, reason="initial", status="champion", artifact_ref=ref,
                                        artifact_sha256=sha))


async def test_a_corrupt_artifact_is_refused_and_a_good_one_is_swapped_in(settings, redis_client, start_service):
    store = make_store(settings, redis_client)
    model = FraudModel()
    for i in range(200):
        model.learn({"amount": float(i), "card_tx_count_1h": float(i % 5)}, i % 5 == 4)
    blob, sha = dump(model)
    good_ref = await store.put("v2", blob)
    bad_ref = await store.put("v1", blob[:-10])  # truncated on its way to the store

    start_service(scoring.run)
    await produce(settings, MODEL_VERSIONS, [(b"v1", version("v1", bad_ref, sha))])
    await produce(settings, TRANSACTIONS_ENRICHED, [(b"k", encode(enriched(i))) for i in range(20)])
    async with Collector(settings, SCORES) as seen:
        await seen.until(lambda c: len(c.of(SCORES)) >= 20)
        assert {decode(r.value, Score).model_version for r in seen.of(SCORES)} == {"untrained"}

        await produce(settings, MODEL_VERSIONS, [(b"v2", version("v2", good_ref, sha))])

        def swapped(c: Collector) -> bool:
            return any(decode(r.value, Score).model_version == "v2" for r in c.of(SCORES))

        # keep sending until a score carries v2: the swap happens while scoring goes on
        for i in range(20, 400, 20):
            await produce(settings, TRANSACTIONS_ENRICHED, [(b"k", encode(enriched(j))) for j in range(i, i + 20)])
            try:
                await seen.until(swapped, timeout_s=0.5)
                break
            except AssertionError:
                continue
        await seen.until(swapped, timeout_s=10)
    last = decode(seen.of(SCORES)[-1].value, Score)
    assert last.model_version == "v2"
    assert last.score == model.score(dict(enriched(int(last.tx_id[1:])).features))
    assert last.reasons and last.stages["scored"] >= last.stages["enriched"]
