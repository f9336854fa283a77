"""The faults, one per run, each injected while steady load flows (or while idle, between
two halves of it). A scenario drives the whole load; the run accounts for it afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fraudstream.faults.harness import Run
from fraudstream.faults.load import Workload, send_all, send_paced
from fraudstream.faults.poison import Poison, burst

Scenario = Callable[[Run, Workload], Awaitable[list[Poison]]]
AT = 0.4
"""Share of the load sent before a fault hits."""
DOWN_S = 3.0
"""How long a stopped or killed Redis stays away."""
WARM = 100
"""Emissions sent first, and scored, before the clock of the recovery gap starts: every
service has started and joined its group."""


async def warm_up(run: Run, workload: Workload) -> None:
    await send_paced(run.settings, workload, stop_at=WARM)
    first = {e.event.tx_id for e in workload.emissions[:WARM] if e.topic == "transactions.raw"}
    if not await run.seen.until(lambda s: first <= s.scores.keys(), 90):
        raise AssertionError("the services did not score the warm-up traffic within 90 s")
    run.warm = first


async def _with_fault(run: Run, workload: Workload, fault: Callable[[], Awaitable[None]]) -> None:
    """Send the whole load; ``fault`` runs once ``AT`` of it is out."""
    await warm_up(run, workload)
    reached = asyncio.Event()
    threshold = int(AT * len(workload.emissions))

    def tick(sent) -> None:
        if sent.records >= threshold:
            reached.set()

    async def inject() -> None:
        await reached.wait()
        await fault()

    injector = asyncio.create_task(inject())
    await send_paced(run.settings, workload, start=WARM, on_tick=tick)
    await injector


async def _idle(run: Run, workload: Workload, fault: Callable[[], Awaitable[None]]) -> None:
    """Send half the load, wait until it is scored, inject the fault, send the rest."""
    await warm_up(run, workload)
    half = len(workload.emissions) // 2
    await send_paced(run.settings, workload, start=WARM, stop_at=half)
    first = {e.event.tx_id for e in workload.emissions[:half] if e.topic == "transactions.raw"}
    if not await run.seen.until(lambda s: first <= s.scores.keys(), 60):
        raise AssertionError("the first half was not scored before the idle fault")
    await fault()
    await send_paced(run.settings, workload, start=half)


async def no_fault(run: Run, workload: Workload) -> list[Poison]:
    """The baseline every fault is compared with."""
    async def nothing() -> None:
        return None
    await _with_fault(run, workload, nothing)
    return []


def kill_service(name: str) -> Scenario:
    async def scenario(run: Run, workload: Workload) -> list[Poison]:
        async def fault() -> None:
            run.fleet.kill(name)
            await asyncio.sleep(0.5)  # the process is gone (a crash), then the orchestrator restarts it
            run.fleet.start(name)
        await _with_fault(run, workload, fault)
        return []
    return scenario


async def _pause_redis(run: Run) -> None:
    run.redis.pause()
    await asyncio.sleep(DOWN_S)
    run.redis.resume()


async def _kill_redis(run: Run) -> None:
    run.redis.kill()
    await asyncio.sleep(DOWN_S)
    await asyncio.to_thread(run.redis.start)  # on its append-only file


async def redis_stopped_under_load(run: Run, workload: Workload) -> list[Poison]:
    await _with_fault(run, workload, lambda: _pause_redis(run))
    return []


async def redis_stopped_idle(run: Run, workload: Workload) -> list[Poison]:
    await _idle(run, workload, lambda: _pause_redis(run))
    return []


async def redis_killed_under_load(run: Run, workload: Workload) -> list[Poison]:
    await _with_fault(run, workload, lambda: _kill_redis(run))
    return []


async def redis_killed_idle(run: Run, workload: Workload) -> list[Poison]:
    await _idle(run, workload, lambda: _kill_redis(run))
    return []


def scale(name: str) -> Scenario:
    """1 → 2 replicas at ``AT`` of the load; once the new one consumes, the old one is
    stopped (SIGTERM, graceful), leaving the new one alone with every partition."""
    async def scenario(run: Run, workload: Workload) -> list[Poison]:
        async def fault() -> None:
            started = run.fleet.consuming(name)
            run.fleet.start(name)
            await asyncio.to_thread(run.fleet.wait_consuming, name, started + 1)
            await asyncio.sleep(1.0)  # both replicas share the partitions for a moment
            code, _ = await asyncio.to_thread(run.fleet.terminate, name, 20.0, True)
            if code != 0:
                raise AssertionError(f"{name} scaled down with exit code {code}")
        await _with_fault(run, workload, fault)
        return []
    return scenario


async def poison_burst(run: Run, workload: Workload) -> list[Poison]:
    poison = burst(workload)

    async def fault() -> None:
        await send_all(run.settings, [p.record for p in poison])
    await _with_fault(run, workload, fault)
    return poison


SCENARIOS: dict[str, Scenario] = {
    "no fault": no_fault,
    **{f"kill -9 {name}": kill_service(name) for name in ("ingest", "features", "scoring", "learner", "monitor")},
    "redis SIGSTOP under load": redis_stopped_under_load,
    "redis SIGSTOP idle": redis_stopped_idle,
    "redis kill -9 under load": redis_killed_under_load,
    "redis kill -9 idle": redis_killed_idle,
    "features 1→2→1": scale("features"),
    "scoring 1→2→1": scale("scoring"),
    "poison burst": poison_burst,
}

__all__ = ["SCENARIOS", "Scenario"]
