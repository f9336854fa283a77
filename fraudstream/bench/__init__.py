"""``fraudstream bench [STAGE]``: throughput and latency of the services on a real stack.

Two phases per stage, with the services as separate processes (as deployed):

* **throughput**: a backlog of N simulated transactions is loaded onto
  ``transactions.raw`` first, then the services start, the first stage last, once the
  others have joined their groups, and drain it; the rate is output events over the time
  from the first to the last output (group joins excluded);
* **latency**: the services still running, the stream goes on at a fixed offered load
  (by default half the throughput just measured); latency is the time from the producer's
  timestamp on ``transactions.raw`` to the arrival of the stage's output at a consumer.

``full`` (the default) runs every service with labels flowing, reads each service's
Prometheus counters and CPU (and the broker's and Redis's) while it drains, splits the
latency by hop from the stamps in each score, then measures the two baselines of
``bench_baselines.py`` on the same backlog and states the pipeline's rate against each.
``docs/benchmarks.md`` has the method, the figures and what they mean.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import orjson
import redis
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from shared.codec import encode
from shared.events import EnrichedTransaction, utcnow
from shared.kafka import Out, Sender, ensure_topics, make_consumer, make_producer, skip_to_end
from shared.settings import Settings
from fraudstream.stack import free_port
from shared.topics import LABELS_RAW, SCORES, TRANSACTIONS_ENRICHED, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from fraudstream.bench.baselines import BASELINES, COPY_TO
from fraudstream.demo import start_services, stop_services
from fraudstream.simulator.traffic import SimulatorConfig, simulate

STAGES = {
    "full": (("ingest", "features", "scoring", "learner", "monitor"), SCORES),
    "ingest": (("ingest",), TRANSACTIONS_VALID),
    "features": (("ingest", "features"), TRANSACTIONS_ENRICHED),
    "pipeline": (("ingest", "features", "scoring"), SCORES),
    "scoring": (("scoring",), SCORES),
}
DEFAULT_EVENTS = {"full": 30_000, "features": 30_000, "pipeline": 30_000, "scoring": 30_000, "ingest": 100_000}
WORLD = SimulatorConfig(seed=11, n_cards=20_000, n_merchants=2_000, label_delay_mean=timedelta(hours=2))
"""Labels come two hours of event time after their transaction: seconds of wall time at
bench rates, so they flow during a run (the simulator's default is days)."""
EVENT_SPAN = timedelta(days=60)
"""A stream starts this far back in event time and ends before now (ingest refuses the
future): room for ~3 M transactions of this world."""
SAMPLE_EVERY_S = 0.25


# --- the events


def _emissions(with_labels: bool):
    config = WORLD.model_copy(update={"start": utcnow() - EVENT_SPAN, "label_genuine": with_labels})
    return (e for e in simulate(config) if with_labels or e.topic == TRANSACTIONS_RAW)


def raw_stream(with_labels: bool = False) -> Iterator[Out]:
    """Endless encoded simulated producer records (transactions, and labels if asked)."""
    for e in _emissions(with_labels):
        yield Out(e.topic, e.event.card_id.encode(), encode(e.event))


def enriched_stream() -> Iterator[Out]:
    """Endless enriched transactions (features from the reference implementation), for
    the scoring stage alone."""
    from services.features.reference import ReferenceFeatures

    reference = ReferenceFeatures()
    for e in _emissions(with_labels=False):
        r = reference.apply(e.event)
        enriched = EnrichedTransaction(transaction=e.event, features=r.features, feature_set_version="bench",
                                       freshness_s=r.freshness_s)
        yield Out(TRANSACTIONS_ENRICHED, e.event.card_id.encode(), encode(enriched))


def take(stream: Iterator[Out], transactions: int) -> list[Out]:
    """The stream's next records up to its ``transactions``-th transaction (labels ride along)."""
    outs, seen = [], 0
    while seen < transactions:
        outs.append(next(stream))
        seen += outs[-1].topic != LABELS_RAW
    return outs


# --- sending and counting


async def send_all(settings: Settings, outs: list[Out], chunk: int = 5000) -> None:
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        sender = Sender(producer)
        for i in range(0, len(outs), chunk):
            await sender.send([Out(settings.topic(o.topic), o.key, o.value) for o in outs[i: i + chunk]])
    finally:
        await producer.stop()


async def paced(settings: Settings, outs: list[Out], rate: float, tick_s: float = 0.01) -> None:
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        sender, started, sent = Sender(producer), time.monotonic(), 0
        while sent < len(outs):
            due = min(len(outs), int((time.monotonic() - started) * rate) + 1)
            if due > sent:
                await sender.send([Out(settings.topic(o.topic), o.key, o.value) for o in outs[sent:due]])
                sent = due
            await asyncio.sleep(tick_s)
    finally:
        await producer.stop()


class OutputCounter:
    """Counts a topic's records from its beginning, or from its end when the counter starts.

    First and last output are arrival times, or with ``record_clock`` the records' own
    timestamps (when their producer made them), for a topic read after the fact: Tansu's
    fetch costs CPU in proportion to the batches a partition holds, so a live counter
    behind a topic written one record per batch slows the broker down (the naive loop
    measured 350/s with one, 520/s without).
    """

    def __init__(self, settings: Settings, topic: str, from_end: bool, hops: bool = False,
                 record_clock: bool = False):
        self.consumer = make_consumer(settings, topic, group=None,
                                      auto_offset_reset="latest" if from_end else "earliest")
        self.from_end, self.record_clock = from_end, record_clock
        self.first = self.last = 0.0
        self.seen = 0
        self.stale = 0
        """Records stamped before ``since``: already on the topic, not part of this load."""
        self.since = 0.0
        self.latencies: list[float] = []
        self.hops: dict[str, list[float]] | None = defaultdict(list) if hops else None
        """With ``hops``, each score's time per hop, from the stamps the services put in it."""

    async def start(self) -> "OutputCounter":
        await self.consumer.start()
        if self.from_end:
            # old outputs re-read from a wrong "latest" were the 3-13 s "stall" of earlier runs
            await skip_to_end(self.consumer)
            self.since = time.time() - 0.001  # record timestamps are whole milliseconds
        return self

    def _take(self, polled) -> None:
        now = time.time()
        for batch in polled.values():
            fresh = [now - r.timestamp / 1000 for r in batch if r.timestamp / 1000 >= self.since]
            self.stale += len(batch) - len(fresh)
            if fresh and self.record_clock:
                stamps = [r.timestamp / 1000 for r in batch]
                self.first = min(self.first or math.inf, *stamps)
                self.last = max(self.last, *stamps)
            elif fresh:
                self.first = self.first or now
                self.last = now
            if fresh:
                self.seen += len(fresh)
                self.latencies.extend(fresh)
                if self.hops is not None:
                    self._hops(batch, now)

    def _hops(self, batch, now: float) -> None:
        for r in batch:
            t = orjson.loads(r.value).get("stages", {})
            if r.timestamp / 1000 >= self.since and {"received", "enriched", "scored"} <= t.keys():
                self.hops["raw_to_enriched"].append(t["enriched"] - t["received"])
                self.hops["enriched_to_scored"].append(t["scored"] - t["enriched"])
                self.hops["scored_to_consumer"].append(now - t["scored"])

    async def until(self, expected: int, timeout_s: float) -> "OutputCounter":
        deadline = time.monotonic() + timeout_s
        try:
            while self.seen < expected and time.monotonic() < deadline:
                self._take(await self.consumer.getmany(timeout_ms=100, max_records=10_000))
        finally:
            await self.consumer.stop()
        return self

    def rate(self) -> float:
        span = self.last - self.first
        return (self.seen - 1) / span if span > 0 else 0.0


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}": 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 95, 99)}


# --- the processes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, object]:
    cpu = Path("/proc/cpuinfo").read_text().splitlines()
    mem = Path("/proc/meminfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpu if line.startswith("model name")), "unknown")
    kib = next(int(line.split()[1]) for line in mem if line.startswith("MemTotal"))
    return {"cores": os.cpu_count() or 0, "memory_gib": round(kib / 2**20, 1), "cpu_model": model,
            "busy_before": busy_share(), "load_1min_at_start": os.getloadavg()[0]}


def _cpu_times() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process, ours or not)."""
    times = _cpu_times()
    return (sum(times[:8]) - times[3] - times[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def busy_share(seconds: float = 2.0) -> float:
    """Share of the machine's CPU time busy over ``seconds`` (before a run: other people's work)."""
    start, busy = time.monotonic(), machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - busy) / ((time.monotonic() - start) * (os.cpu_count() or 1))


def events_in_out(port: int) -> tuple[float, float]:
    """Sum of a service's ``fraudstream_events_in`` and ``_out`` counters (0 before it serves)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as reply:
            text = reply.read().decode()
    except OSError:
        return 0.0, 0.0
    totals = {"fraudstream_events_in": 0.0, "fraudstream_events_out": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name in totals:
            totals[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals["fraudstream_events_in"], totals["fraudstream_events_out"]


def broker_pid(settings: Settings) -> int | None:
    """The local broker's pid, found by its listener on its command line."""
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode() if entry.name.isdigit() else ""
        except OSError:
            continue
        if "tansu" in cmd and f"//{settings.kafka_bootstrap} " in f"{cmd} ":
            return int(entry.name)
    return None


def redis_cpu(url: str) -> Callable[[], float]:
    """The Redis server's own CPU seconds (every client's work, ours and anyone else's)."""
    client = redis.Redis.from_url(url)

    def seconds() -> float:
        info = client.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    return seconds


@dataclass
class Watched:
    """A process, sampled: (wall time, CPU seconds, events in, events out)."""

    name: str
    cpu: Callable[[], float]
    proc: subprocess.Popen | None = None
    port: int | None = None
    """The service's Prometheus endpoint."""
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, proc: subprocess.Popen, port: int | None = None) -> "Watched":
        return cls(name, lambda: cpu_seconds(proc.pid), proc, port)

    def sample(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see its log")
        counts = events_in_out(self.port) if self.port else (0.0, 0.0)
        self.samples.append((time.time(), self.cpu(), *counts))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds from the last sample at or before ``start`` to the first at or after ``end``."""
        before = [s for s in self.samples if s[0] <= start] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end] or self.samples[-1:]
        return after[0][1] - before[-1][1]

    def busy_window(self) -> tuple[float, float]:
        """From the service's last sample with nothing consumed to its first with everything."""
        final_in = self.samples[-1][2]
        start = max((s[0] for s in self.samples if s[2] == 0), default=self.samples[0][0])
        return start, next(s[0] for s in self.samples if s[2] == final_in)

    def busy(self) -> dict[str, float]:
        """Counts, CPU and rates over the service's own busy window."""
        final_in, final_out = self.samples[-1][2:]
        start, end = self.busy_window()
        window, cpu = max(end - start, 1e-9), self.cpu_between(start, end)
        return {"events_in": final_in, "events_out": final_out, "in_per_s": final_in / window,
                "out_per_s": final_out / window, "busy_s": window, "cpu_s": cpu,
                "cpu_us_per_event_in": 1e6 * cpu / final_in if final_in else 0.0}


def infrastructure(settings: Settings) -> list[Watched]:
    """The broker (when it runs here) and Redis, whose CPU the services' work also costs;
    this process (counting, producing); the whole machine, to tell what others used."""
    pid = broker_pid(settings)
    broker = [Watched("broker", lambda: cpu_seconds(pid))] if pid else []
    return [*broker, Watched("redis", redis_cpu(settings.redis_url)), Watched("bench", time.process_time),
            Watched("machine", machine_busy_seconds)]


async def sample_until(watched: list[Watched], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.to_thread(lambda: [w.sample() for w in watched])
        await asyncio.sleep(SAMPLE_EVERY_S)


async def settled(watched: list[Watched], sampling: asyncio.Task, quiet_samples: int = 4,
                  timeout_s: float = 120.0) -> None:
    """Wait until no service's input count moved for ``quiet_samples`` samples (the
    learner and the monitor finish the backlog after the last score)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sampling.done():
            sampling.result()  # a service died: say which
            return
        recent = [w.samples[-quiet_samples:] for w in watched]
        if all(len(r) == quiet_samples and len({s[2] for s in r}) == 1 and r[0][2] > 0 for r in recent):
            return
        await asyncio.sleep(SAMPLE_EVERY_S)
    raise TimeoutError(f"services still consuming after {timeout_s:.0f}s")


async def produced(watched: Watched, n: int, timeout_s: float) -> None:
    """Wait until a sampled process's ``fraudstream_events_out`` reaches ``n``."""
    deadline = time.monotonic() + timeout_s
    while not watched.samples or watched.samples[-1][3] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{watched.name} produced {watched.samples[-1][3] if watched.samples else 0:.0f}"
                               f" of {n} in {timeout_s:.0f}s")
        await asyncio.sleep(SAMPLE_EVERY_S)


def start_watched(name: str, env: dict[str, str], logdir: Path) -> Watched:
    port = free_port()
    (proc,) = start_services([name], env | {"FRAUDSTREAM_METRICS_PORT": str(port)}, logdir)
    return Watched.of(name, proc, port)


async def start_downstream_first(settings: Settings, names: tuple[str, ...], env: dict[str, str],
                                 logdir: Path) -> list[Watched]:
    """Start every service but the first, wait until each has joined its consumer group,
    then the first. Started together, a service that joins late drains what piled up for
    it in a burst, and the first-to-last-output window measures that burst, not the pipeline."""
    later = [start_watched(name, env, logdir) for name in names[1:]]
    try:
        await joined(settings, names[1:])
    except BaseException:
        stop_services([w.proc for w in later])
        raise
    return [start_watched(names[0], env, logdir), *later]


async def joined(settings: Settings, services: tuple[str, ...], timeout_s: float = 60.0) -> None:
    """Wait until each service's consumer group is Stable with a member."""
    groups = {settings.group(name) for name in services}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while groups:
            for group in sorted(groups):  # one per request: Tansu 0.6 garbles a reply with several
                for reply in await admin.describe_consumer_groups([group]):
                    # (error, group, state, protocol type, protocol, members)
                    groups -= {g[1] for g in reply.groups if g[2] == "Stable" and g[5]}
            if groups and time.monotonic() > deadline:
                raise TimeoutError(f"groups not joined after {timeout_s:.0f}s: {', '.join(sorted(groups))}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# --- the figures


@dataclass
class Figures:
    stage: str
    events: int
    throughput_per_s: float
    cpu_s_per_service: dict[str, float]
    offered_per_s: float
    latency_ms: dict[str, float]
    stale_outputs: int = 0
    cores: int = os.cpu_count() or 0

    def lines(self) -> list[str]:
        cpu = ", ".join(f"{k} {v:.1f}s" for k, v in self.cpu_s_per_service.items())
        return [
            f"stage {self.stage} on {self.cores} cores (broker, Redis and services on this machine)",
            f"  throughput: {self.throughput_per_s:,.0f} events/s draining {self.events:,} transactions (CPU: {cpu})",
            latency_line(self.offered_per_s, self.latency_ms, self.stale_outputs),
        ]


def latency_line(offered: float, latency_ms: dict[str, float], stale: int) -> str:
    lat = " ".join(f"{k} {v:.1f}" for k, v in latency_ms.items())
    warn = f" (!! {stale} outputs from before the load ignored)" if stale else ""
    return f"  latency at {offered:,.0f} transactions/s offered, ms: {lat}{warn}"


@dataclass
class FullFigures:
    stage: str
    events: int
    labels: int
    throughput_per_s: float
    offered_per_s: float
    latency_ms: dict[str, float]
    latency_hops_ms: dict[str, dict[str, float]]
    services: dict[str, dict[str, float]]
    drain: dict[str, float]
    """The whole drain, first service busy to last idle: its length and the broker's and Redis's CPU."""
    baselines: dict[str, dict[str, float]]
    share_of_passthrough: float
    times_naive: float
    machine: dict[str, object]
    stale_outputs: int = 0

    def lines(self) -> list[str]:
        m, pt, nv = self.machine, self.baselines["passthrough"], self.baselines["naive"]
        out = [
            f"full stack ({', '.join(self.services)}) on {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']};"
            " broker, Redis and every process on this machine",
            f"  machine busy before the run: {100 * m['busy_before']:.0f} % of its CPU"
            + (" (!! other work on this machine: figures are low)" if m["busy_before"] > 0.1 else ""),
            f"  end to end, transactions.raw -> scores, draining {self.events:,} transactions + {self.labels:,} labels:"
            f" {self.throughput_per_s:,.0f} transactions/s",
            latency_line(self.offered_per_s, self.latency_ms, self.stale_outputs),
            "    by hop, ms (stamps in each score): " + "; ".join(
                f"{hop.replace('_', ' ')} p50 {q['p50']:.1f} p99 {q['p99']:.1f}" for hop, q in self.latency_hops_ms.items()),
            "  per service over its own busy window (Prometheus fraudstream_events_in/_out, CPU from /proc):",
        ]
        for name, s in self.services.items():
            out.append(f"    {name:<9} in {s['events_in']:>8,.0f} ({s['in_per_s']:>6,.0f}/s)"
                       f"  out {s['events_out']:>8,.0f} ({s['out_per_s']:>6,.0f}/s)"
                       f"  CPU {s['cpu_s']:5.1f} s ({s['cpu_us_per_event_in']:4.0f} us/event in)")
        d = self.drain
        cpu = sum(s["cpu_s"] for s in self.services.values()) + d.get("broker_cpu_s", 0) + d["redis_cpu_s"]
        others = d["machine_cpu_s"] - cpu - d["bench_cpu_s"]
        out += [
            f"    whole drain {d['seconds']:.1f} s: broker CPU {d.get('broker_cpu_s', 0):.1f} s,"
            f" Redis CPU {d['redis_cpu_s']:.1f} s; ours {cpu:.1f} s of {m['cores'] * d['seconds']:.1f} core-seconds,"
            f" other processes {max(0.0, others):.1f} s" + (" (!!)" if others > 0.1 * m["cores"] * d["seconds"] else ""),
            f"  baselines on the same {self.events:,} transactions, each its own process:",
            f"    raw pass-through:     {pt['throughput_per_s']:>7,.0f}/s ({_cpu(pt)})"
            f"  -> end to end is {100 * self.share_of_passthrough:.1f} % of it (target >= 20 %, aim 30 %)",
            f"    naive per-event loop: {nv['throughput_per_s']:>7,.0f}/s ({_cpu(nv)})"
            f"  -> end to end is {self.times_naive:.1f}x it (target >= 2x)",
        ]
        return out


def _cpu(baseline: dict[str, float]) -> str:
    ours = baseline["cpu_s"] + baseline.get("broker_cpu_s", 0) + baseline["redis_cpu_s"] + baseline["bench_cpu_s"]
    return (f"CPU {baseline['cpu_s']:.1f} s, broker {baseline.get('broker_cpu_s', 0):.1f} s,"
            f" Redis {baseline['redis_cpu_s']:.1f} s, other processes {max(0.0, baseline['machine_cpu_s'] - ours):.1f} s")


# --- the runs


async def run_bench(settings: Settings, env: dict[str, str], logdir: Path, stage: str, n: int,
                    offered: float | None, latency_s: float) -> Figures | FullFigures:
    if stage == "full":
        return await run_full(settings, env, logdir, n, offered, latency_s)
    services, output = STAGES[stage]
    # One stream: the backlog, then the paced tail, so event time only moves forward.
    stream = enriched_stream() if stage == "scoring" else raw_stream()
    await send_all(settings, take(stream, n))
    procs = [w.proc for w in await start_downstream_first(settings, services, env, logdir)]
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
        stop_services([w.proc for w in watched])
    transactions = [o for o in backlog if o.topic == TRANSACTIONS_RAW]
    baselines = {which: await run_baseline(settings, env, logdir, which, transactions) for which in BASELINES}
    rate = drained.rate()
    return FullFigures(
        "full", drained.seen, len(backlog) - len(transactions), rate, offered, percentiles(latency.latencies),
        {hop: percentiles(values) for hop, values in latency.hops.items()},
        services, drain, baselines, rate / baselines["passthrough"]["throughput_per_s"],
        rate / baselines["naive"]["throughput_per_s"], host | {"load_1min_at_end": os.getloadavg()[0]}, latency.stale,
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
