"""The bench's runs: a stage's throughput then latency, the full stack, the baselines."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from shared.kafka import Out, ensure_topics
from shared.settings import Settings
from shared.topics import LABELS_RAW, SCORES, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from fraudstream.bench.baselines import BASELINES, COPY_TO
from fraudstream.bench.figures import Figures, FullFigures
from fraudstream.bench.outputs import OutputCounter, percentiles
from fraudstream.bench.probes import (Watched, cpu_seconds, infrastructure, machine, processes, produced,
                                      sample_until, settled)
from fraudstream.bench.startup import start_downstream_first
from fraudstream.bench.workload import enriched_stream, paced, raw_stream, send_all, take
from fraudstream.processes import stop_services
from fraudstream.stack import free_port

STAGES = {
    "full": (("ingest", "features", "scoring", "learner", "monitor"), SCORES),
    "ingest": (("ingest",), TRANSACTIONS_VALID),
    "features": (("ingest", "features"), TRANSACTIONS_ENRICHED),
    "pipeline": (("ingest", "features", "scoring"), SCORES),
    "scoring": (("scoring",), SCORES),
}
DEFAULT_EVENTS = {"full": 30_000, "features": 30_000, "pipeline": 30_000, "scoring": 30_000, "ingest": 100_000}
async def run_bench(settings: Settings, env: dict[str, str], logdir: Path, stage: str, n: int,
                    offered: float | None, latency_s: float) -> Figures | FullFigures:
    if stage == "full":
        return await run_full(settings, env, logdir, n, offered, latency_s)
    services, output = STAGES[stage]
    # One stream: the backlog, then the paced tail, so event time only moves forward.
    stream = enriched_stream() if stage == "scoring" else raw_stream()
    await send_all(settings, take(stream, n))
    procs = processes(await start_downstream_first(settings, services, env, logdir))
    try:
        drained = await (await OutputCounter(settings, output, from_end=False).start()).until(n, 60 + n / 500)
        cpu = {name: cpu_seconds(p.pid) for name, p in zip(services, procs)}
        offered = offered or drained.rate() / 2
        latency = await run_latency(settings, output, take(stream, int(offered * latency_s)), offered, latency_s)
    finally:
        stop_services(procs)
    return Figures(stage, drained.seen, drained.rate(), cpu, offered, percentiles(latency.latencies), latency.stale)


async def run_latency(settings: Settings, output: str, tail: list[Out], offered: float,
                      latency_s: float, hops: bool = False) -> OutputCounter:
    """Publish ``tail`` with its transactions at ``offered`` per second; count the outputs."""
    transactions = sum(o.topic != LABELS_RAW for o in tail)
    counter = await OutputCounter(settings, output, from_end=True, hops=hops).start()
    waiting = asyncio.create_task(counter.until(transactions, 60 + latency_s))
    await paced(settings, tail, offered * len(tail) / transactions)
    return await waiting


async def run_full(settings: Settings, env: dict[str, str], logdir: Path, n: int, offered: float | None,
                   latency_s: float) -> FullFigures:
    names, output = STAGES["full"]
    host = machine()  # the load before any of ours: other work on this machine
    stream = raw_stream(with_labels=True)
    backlog = take(stream, n)
    await send_all(settings, backlog)
    watched, stop_sampling = await start_downstream_first(settings, names, env, logdir), asyncio.Event()
    infra = infrastructure(settings)
    sampling = asyncio.create_task(sample_until(watched + infra, stop_sampling))
    try:
        drained = await (await OutputCounter(settings, output, from_end=False).start()).until(n, 60 + n / 200)
        await settled(watched, sampling)
        stop_sampling.set()
        await sampling
        services = {w.name: w.busy() for w in watched}
        windows = [w.busy_window() for w in watched]
        start, end = min(w[0] for w in windows), max(w[1] for w in windows)
        drain = {"seconds": end - start} | {f"{w.name}_cpu_s": w.cpu_between(start, end) for w in infra}
        offered = offered or drained.rate() / 2
        latency = await run_latency(settings, output, take(stream, int(offered * latency_s)), offered, latency_s,
                                    hops=True)
    finally:
        stop_sampling.set()
        stop_services(processes(watched))
    transactions = [o for o in backlog if o.topic == TRANSACTIONS_RAW]
    baselines = {which: await run_baseline(settings, env, logdir, which, transactions) for which in BASELINES}
    rate = drained.rate()
    return FullFigures(
        "full", drained.seen, len(backlog) - len(transactions), rate, offered, percentiles(latency.latencies),
        {hop: percentiles(values) for hop, values in (latency.hops or {}).items()},
        services, drain, baselines, rate / baselines["passthrough"]["throughput_per_s"],
        rate / baselines["naive"]["throughput_per_s"], host | {"load_1min_at_end": os.getloadavg()[0]}, latency.stale,
        rate / baselines["fused"]["throughput_per_s"],
    )


async def run_baseline(settings: Settings, env: dict[str, str], logdir: Path, which: str,
                       transactions: list[Out]) -> dict[str, float]:
    """One baseline as its own process, on fresh topics and keys holding the same transactions."""
    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}bench-{which}.",
                                    "redis_prefix": f"{settings.redis_prefix}:bench-{which}"})
    await ensure_topics(s)
    await send_all(s, transactions)
    port = free_port()
    env = env | {"FRAUDSTREAM_TOPIC_PREFIX": s.topic_prefix, "FRAUDSTREAM_REDIS_PREFIX": s.redis_prefix,
                 "FRAUDSTREAM_METRICS_PORT": str(port)}
    with open(logdir / f"bench-{which}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fraudstream.bench.baselines", which], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    watched, infra, stop_sampling = Watched.of(which, proc, port), infrastructure(s), asyncio.Event()
    sampling = asyncio.create_task(sample_until([watched, *infra], stop_sampling))
    try:
        n = len(transactions)
        if which == "naive":
            # Read its outputs only once it is done (see OutputCounter on record_clock), and
            # learn that from its own counter: polling the group's offsets on the broker
            # while it runs slowed it from 660 to 390/s.
            await produced(watched, n, timeout_s=60 + n / 20)
        counter = OutputCounter(s, COPY_TO, from_end=False, record_clock=which == "naive")
        drained = await (await counter.start()).until(n, 60 + n / 20)
    finally:
        stop_sampling.set()
        await sampling
        stop_services([proc])
    if drained.seen < len(transactions):
        raise RuntimeError(f"baseline {which} gave {drained.seen} of {len(transactions)} outputs")
    return {"throughput_per_s": drained.rate(), "cpu_s": watched.cpu_between(drained.first, drained.last)} | {
        f"{w.name}_cpu_s": w.cpu_between(drained.first, drained.last) for w in infra}
