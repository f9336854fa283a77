"""Graceful shutdown: SIGTERM each service in turn mid-load; each exits 0 within the bound,
having committed what it handled, so its restart reprocesses nothing (or, for the learner,
only what its last snapshot lacks, which it learns exactly once)."""

from __future__ import annotations

import asyncio

import pytest

from fraudstream.faults.accounting import account
from fraudstream.faults.harness import Run
from fraudstream.faults.load import Workload, send_paced
from fraudstream.faults.scenarios import WARM, warm_up
from shared.topics import TRANSACTIONS_VALID

pytestmark = pytest.mark.faults

EXIT_BOUND_S = 15.0
ORDER = ("ingest", "features", "scoring", "learner", "monitor")


async def test_sigterm_mid_load_exits_zero_having_committed(stack, tmp_path):
    workload = Workload.build(2500, 400, seed=13)
    exits: dict[str, tuple[int | None, float]] = {}
    async with Run("sigterm", stack.settings.kafka_bootstrap, tmp_path, follow=(TRANSACTIONS_VALID,)) as run:
        await warm_up(run, workload)
        steps = [int(len(workload.emissions) * (i + 1) / (len(ORDER) + 1)) for i in range(len(ORDER))]
        reached = [asyncio.Event() for _ in ORDER]

        def tick(sent) -> None:
            for step, event in zip(steps, reached):
                if WARM + sent.records >= step:
                    event.set()

        async def terminate_in_turn() -> None:
            for name, event in zip(ORDER, reached):
                await event.wait()
                exits[name] = await asyncio.to_thread(run.fleet.terminate, name, EXIT_BOUND_S * 2)
                run.fleet.start(name)

        stopper = asyncio.create_task(terminate_in_turn())
        await send_paced(run.settings, workload, start=WARM, on_tick=tick)
        await stopper
        settled = await run.settled(workload)
        result = account("sigterm each", run.settings, workload.emissions, run.seen, warm=run.warm)
        valid = run.seen.accepted[TRANSACTIONS_VALID]
        reprocessed = {
            "ingest": sum(n - 1 for n in valid.values()),
            "features": sum(max(0, n - valid[t]) for t, n in run.seen.enriched_copies.items()),
            "scoring": sum(max(0, len(s) - run.seen.enriched_copies[t]) for t, s in run.seen.scores.items()),
        }
        crashed = run.fleet.unexpected_exits()
    print("\nSIGTERM mid-load: " + ", ".join(f"{n} exit {c} in {s:.1f} s" for n, (c, s) in exits.items())
          + f"; reprocessed after restart: {reprocessed}; learned {result.labels_learned}/{result.labels_expected}"
          + f"; recovery gap {result.recovery_gap_s:.1f} s")
    assert crashed == []
    assert all(code == 0 and seconds <= EXIT_BOUND_S for code, seconds in exits.values()), exits
    assert settled and result.lost == 0
    assert reprocessed == {"ingest": 0, "features": 0, "scoring": 0}
    assert result.labels_learned == result.labels_expected
