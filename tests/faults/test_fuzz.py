"""100 000 seeded fuzzed inputs across both raw topics through the real services, each its
own process: no service crashes, and every input is accounted for."""

from __future__ import annotations

import time

import pytest

from fraudstream.faults.accounting import account_fuzz
from fraudstream.faults.fuzz import generate
from fraudstream.faults.harness import Run
from fraudstream.faults.load import send_all
from shared.topics import LABELS, TRANSACTIONS_VALID

pytestmark = pytest.mark.faults

N = 100_000


async def test_fuzzed_inputs_crash_nothing_and_every_one_is_accounted_for(stack, tmp_path):
    inputs = generate(N, seed=2026)
    started = time.monotonic()
    async with Run("fuzz", stack.settings.kafka_bootstrap, tmp_path, follow=(TRANSACTIONS_VALID, LABELS)) as run:
        await send_all(run.settings, inputs)

        def settled(seen) -> bool:
            if run.fleet.unexpected_exits():
                return True  # a crashed stage accounts for nothing more: fail now
            result = account_fuzz(N, seen, TRANSACTIONS_VALID, LABELS)
            return not (result.unaccounted_inputs or result.unaccounted_transactions or result.unaccounted_labels)

        done = await run.seen.until(settled, timeout_s=300, every_s=2.0)
        result = account_fuzz(N, run.seen, TRANSACTIONS_VALID, LABELS)
        exits = run.fleet.unexpected_exits()
    print(f"\nfuzz: {N} inputs in {time.monotonic() - started:.0f} s: {result.refused_by_ingest} refused by ingest, "
          f"{result.accepted_transactions} transactions accepted ({result.scored} scored, "
          f"{result.transactions_dead_lettered} dead-lettered), {result.accepted_labels} labels accepted "
          f"({result.labels_learned} learned, {result.labels_dead_lettered} dead-lettered); reasons "
          f"{dict(result.reasons.most_common())}")
    assert exits == [], f"processes exited: {exits}"
    assert done, result
    assert result.refused_by_ingest + result.accepted_transactions + result.accepted_labels == N
