"""``fraudstream soak``: steady load for a chosen time, every process's memory sampled.

Every service runs as its own process on a local Tansu broker and a Redis of the run's
own; simulated traffic flows at a steady rate. Every ``--every`` seconds the RSS of each
service and of Redis, and Redis's ``used_memory``, are sampled. A series *grows without
bound* when the least-squares slope over the second half of the run projects more than
``--max-growth`` MiB an hour: the command then fails. The broker is sampled and drawn
too, but not judged: the memory broker keeps every message it was sent (DESIGN.md).

Redis keeps per-transaction state (feature vectors, dedup ids) for a TTL, the dashboard every
score for its label join; the soak sets those to minutes so the run reaches the steady state a
long deployment reaches in days. Scores must keep coming too: a run in which none came
for ``STALL_S`` fails, whatever the memory did.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from redis.exceptions import ResponseError

from fraudstream.faults.harness import Run
from fraudstream.faults.load import send_stream
from fraudstream.faults.processes import rss_bytes
from fraudstream.simulator.publish import anchored
from fraudstream.simulator.traffic import SimulatorConfig, simulate, time_scale
from fraudstream.stack import LocalStack
from shared.codec import decode
from shared.events import ModelVersionPublished
from shared.kafka import make_consumer
from shared.settings import Settings
from shared.stall import FetchWait
from shared.topics import DEADLETTER, MODEL_RETRAIN, MODEL_VERSIONS, SCORES

MIB = 1024 * 1024
STALL_S = 120.0
"""Scores must keep coming: a run in which none came for longer fails (the pipeline stopped)."""
SOAK_ENV = {
    "FRAUDSTREAM_FEATURE_TTL_S": "300",
    "FRAUDSTREAM_DEDUP_TTL_S": "300",
    "FRAUDSTREAM_LABEL_WAIT_S": "120",
    "FRAUDSTREAM_LABEL_MATURITY_S": str(7 * 86400),
    "FRAUDSTREAM_GENUINE_SAMPLE_RATE": "0.2",
    "FRAUDSTREAM_PUBLISH_EVERY_S": "60",
    "FRAUDSTREAM_PUBLISH_EVERY_LABELS": "1000",
    "FRAUDSTREAM_RETRAIN_MIN_LABELS": "200",
    "FRAUDSTREAM_RETRAIN_MIN_LABELS_SINCE_DRIFT": "800",
    "FRAUDSTREAM_RECENT_SCORES": "20000",
    "FRAUDSTREAM_DASHBOARD_LABEL_WAIT_S": "300",
    "FRAUDSTREAM_ARTIFACTS_KEPT": "50",
    "FRAUDSTREAM_ARTIFACT_GRACE_S": "60",
}
"""Production-like learning (sampling, retrains); TTLs, the monitor's table of recent scores
and the dashboard's score/label join (every score kept ``dashboard_label_wait_s``, an hour by
default: a one-hour run would only ever fill it) and the artifacts kept (the latest 50 versions'
and a minute's grace: a version every few seconds here) small enough that a run of minutes
reaches the steady state of a long deployment. Labels come ~2 wall seconds after their transaction."""


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, y)`` points.

    >>> slope([(0, 1.0), (1, 3.0), (2, 5.0)])
    2.0
    >>> slope([(0, 4.0)])
    0.0
    """
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


@dataclass
class Curve:
    """One memory series in MiB over seconds since the start."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    judged: bool = True

    def growth_per_hour(self) -> float:
        """MiB an hour, fitted over the second half of the run."""
        if not self.points:
            return 0.0
        half = self.points[-1][0] / 2
        return slope([p for p in self.points if p[0] >= half]) * 3600


@dataclass
class SoakResult:
    duration_s: float
    curves: dict[str, Curve]
    counts: Counter
    sent: int
    max_growth: float
    exits: list[tuple[str, int]]
    busy: int = 0
    """Samples at which Redis answered BUSY (a script past its time limit): no ``used_memory`` then."""
    scored: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the start, transactions scored so far) at each sample."""

    @property
    def growing(self) -> list[str]:
        return [c.name for c in self.curves.values() if c.judged and c.growth_per_hour() > self.max_growth]

    @property
    def longest_pause_s(self) -> float:
        """The longest time no score came while traffic flowed, after the first one came."""
        longest, since, last = 0.0, None, 0
        for t, n in self.scored:
            if n > last or since is None:
                since = t if n > 0 else None
            longest = max(longest, t - since) if since is not None else longest
            last = n
        return longest

    @property
    def stalled(self) -> bool:
        return self.longest_pause_s > STALL_S

    def summary(self) -> str:
        n = self.counts
        lines = [f"soak: {self.duration_s / 60:.1f} min, {self.sent} records sent, {n[SCORES]} scored, "
                 f"{n[DEADLETTER]} dead-lettered, {n[MODEL_VERSIONS]} model versions; {n[MODEL_RETRAIN]} retrain "
                 f"requests: {n['retrain']} promoted, {n['rejected']} rejected, the rest refused or waiting"]
        for c in self.curves.values():
            first, last = c.points[0][1], c.points[-1][1]
            verdict = "not judged" if not c.judged else ("GROWING" if c.name in self.growing else "flat")
            lines.append(f"  {c.name:<16} {first:8.1f} → {last:8.1f} MiB, second half {c.growth_per_hour():+8.1f} "
                         f"MiB/h  {verdict}")
        lines.append(f"  longest pause in scoring: {self.longest_pause_s:.0f} s"
                     + (f"  STALLED (more than {STALL_S:.0f} s)" if self.stalled else ""))
        if self.busy:
            lines.append(f"  Redis answered BUSY (a script running past its time limit) at {self.busy} samples")
        if self.exits:
            lines.append(f"  processes exited: {self.exits}")
        return "\n".join(lines)


async def _count(settings: Settings, counts: Counter, stop: asyncio.Event) -> None:
    """Records per topic; model versions also by reason (``retrain``: promoted, ``rejected``)."""
    consumer = make_consumer(settings, SCORES, DEADLETTER, MODEL_VERSIONS, MODEL_RETRAIN, group=None)
    wait = FetchWait("soak", consumer, settings.fetch_max_wait_ms)
    await consumer.start()
    try:
        while not stop.is_set():
            for tp, batch in (await wait.poll(timeout_ms=200)).items():
                topic = tp.topic.removeprefix(settings.topic_prefix)
                counts[topic] += len(batch)
                if topic == MODEL_VERSIONS:
                    counts.update(decode(r.value, ModelVersionPublished).reason for r in batch)
    finally:
        await consumer.stop()


async def soak(duration_s: float, rate: float, every_s: float, max_growth: float, workdir: Path,
               emit=print) -> SoakResult:
    base = SimulatorConfig(seed=17, n_cards=800, n_merchants=150)
    scale = time_scale(base, rate)
    config = anchored(base.model_copy(update={"label_delay_mean": timedelta(seconds=2 * scale)}), rate, duration_s)
    with LocalStack(Settings(partitions=2)) as stack:
        broker_pid = stack.processes[0].pid
        async with Run("soak", stack.settings.kafka_bootstrap, workdir, env=SOAK_ENV, read_back=False) as run:
            stop, counts = asyncio.Event(), Counter[str]()
            counter = asyncio.create_task(_count(run.settings, counts, stop))
            sender = asyncio.create_task(send_stream(run.settings, simulate(config, int(duration_s * rate)), scale,
                                                     stop=stop))
            curves: dict[str, Curve] = {}
            started, busy, scored = time.monotonic(), 0, []

            def sample(name: str, value: float, judged: bool = True) -> None:
                curves.setdefault(name, Curve(name, judged=judged)).points.append((elapsed, value / MIB))

            while (elapsed := time.monotonic() - started) < duration_s and not sender.done():
                for name, rss in run.fleet.rss().items():
                    sample(name, rss)
                sample("redis rss", run.redis.rss())
                try:
                    sample("redis used", await asyncio.to_thread(run.redis.used_memory))
                except ResponseError as exc:  # a script past its time limit: Redis answers only SCRIPT KILL
                    if not str(exc).startswith("BUSY"):
                        raise
                    busy += 1
                    emit(f"[{elapsed:5.0f} s] Redis busy: {exc}")
                sample("broker (tansu)", rss_bytes(broker_pid), judged=False)
                scored.append((elapsed, counts[SCORES]))
                if len(curves["redis rss"].points) % max(1, int(60 / every_s)) == 0:
                    emit(f"[{elapsed:5.0f} s] scored {counts[SCORES]}, retrains {counts[MODEL_RETRAIN]}, " + ", ".join(
                        f"{c.name} {c.points[-1][1]:.0f}" for c in curves.values()) + " MiB")
                await asyncio.sleep(every_s)
            stop.set()
            sent = await sender
            await counter
            exits = run.fleet.unexpected_exits()
    return SoakResult(time.monotonic() - started, curves, counts, sent.records, max_growth, exits, busy, scored)


def plot(result: SoakResult, path: Path) -> None:
    """Services on top, Redis and the broker below, linear MiB over minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    for c in result.curves.values():
        ax = bottom if c.name.startswith(("redis", "broker")) else top
        points = c.points[1:]  # the first sample catches processes still starting
        ax.plot([t / 60 for t, _ in points], [y for _, y in points], "--" if not c.judged else "-",
                label=f"{c.name}: {c.growth_per_hour():+.0f} MiB/h" + ("" if c.judged else " (not judged)"))
    for ax, what in ((top, "service RSS"), (bottom, "Redis and broker")):
        ax.axvline(result.duration_s / 120, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(f"{what}, MiB")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("minutes (slopes fitted right of the dotted line, over the second half)")
    top.set_title(f"fraudstream soak: {result.duration_s / 60:.0f} min at {result.sent / result.duration_s:.0f} "
                  f"records/s, {result.counts[SCORES]} transactions scored")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    path.with_suffix(".json").write_text(json.dumps(
        {c.name: {"judged": c.judged, "points": [[round(t, 1), round(y, 2)] for t, y in c.points]}
         for c in result.curves.values()}))


def soak_command(
    minutes: float = 60.0,
    rate: float = 200.0,
    every: float = 5.0,
    max_growth: float = 50.0,
    png: Path = Path("docs/img/soak.png"),
) -> None:
    """Run steady load for MINUTES, sample every process's memory, draw the curves (PNG, and
    the samples beside it as JSON) and fail if any grows without bound (more than MAX_GROWTH
    MiB an hour over the second half)."""
    import typer

    workdir = Path(tempfile.mkdtemp(prefix="fraudstream-soak-"))
    typer.echo(f"soak: {minutes:g} min at {rate:g} tx/s; service logs in {workdir}")
    result = asyncio.run(soak(minutes * 60, rate, every, max_growth, workdir, emit=typer.echo))
    plot(result, png)
    typer.echo(result.summary())
    typer.echo(f"curves written to {png}")
    if result.growing or result.exits or result.stalled:
        raise typer.Exit(1)


def register(app) -> None:
    """Add ``soak`` to the ``fraudstream`` typer app."""
    app.command("soak")(soak_command)
