"""One fault per run under steady simulated load, every service its own process, a Redis of
the run's own on its append-only file; then everything read back and accounted for."""

from __future__ import annotations

import pytest

from fraudstream.faults.accounting import account
from fraudstream.faults.harness import Run
from fraudstream.faults.load import Workload
from fraudstream.faults.scenarios import SCENARIOS
from shared.codec import decode
from shared.events import Transaction

pytestmark = pytest.mark.faults

N, RATE = 2000, 400


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_nothing_lost_nothing_skewed(name, stack, tmp_path, table):
    workload = Workload.build(N, RATE, seed=11)
    async with Run(name, stack.settings.kafka_bootstrap, tmp_path) as run:
        poison = await SCENARIOS[name](run, workload)
        extra = {decode(p.record.value, Transaction).tx_id for p in poison if p.reason is None}
        settled = await run.settled(workload, extra, letters=sum(p.reason is not None for p in poison))
        result = account(name, run.settings, workload.emissions, run.seen, poison, run.warm)
        result.exits = run.fleet.unexpected_exits()
    table.append(result)
    assert result.exits == [], f"processes exited: {result.exits}"
    assert result.good_refused[:5] == [], f"{len(result.good_refused)} good records refused"
    assert result.unanswered == [], "poison with no dead letter"
    assert result.wrong_reasons == []
    assert result.lost == 0
    assert result.conflicting_duplicates == 0
    assert result.labels_learned == result.labels_expected
    assert result.poison_dead_lettered == result.poison_expected
    assert result.card_values_off == 0
    # Merchant windows count whole event-time hours over every partition, so how far one
    # partition runs ahead of another shows in them (the table's second figure): reported,
    # not held to zero, until the features stage bounds merchant windows under skew.
    assert settled, result.row()
