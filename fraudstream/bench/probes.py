"""What the bench watches while services run: CPU from /proc, each service's Prometheus
counters, and the broker's and Redis's CPU (the group joins it waits for are in ``startup``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import Settings

SAMPLE_EVERY_S = 0.25


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
    def of(cls, name: str, proc: subprocess.Popen, port: int | None = None) -> Watched:
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
        """From the service's last sample with nothing consumed to its first with everything.

        The counters only grow: a scrape that timed out on a loaded machine reads 0 (as
        before the service serves) and is no start, nor the last count (it made busy
        windows of 0 s and negative CPU when the load average was ~20 on 2 cores).
        """
        final_in = max(s[2] for s in self.samples)
        first = next(i for i, s in enumerate(self.samples) if s[2] > 0) if final_in else len(self.samples)
        start = max((s[0] for s in self.samples[:first] if s[2] == 0), default=self.samples[0][0])
        return start, next(s[0] for s in self.samples if s[2] == final_in)

    def busy(self) -> dict[str, float]:
        """Counts, CPU and rates over the service's own busy window."""
        final_in, final_out = max(s[2] for s in self.samples), max(s[3] for s in self.samples)
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


def processes(watched: list[Watched]) -> list[subprocess.Popen]:
    """The child processes among the watched (the broker, Redis and the machine are not ours)."""
    return [w.proc for w in watched if w.proc is not None]


def _sample_all(watched: list[Watched]) -> None:
    for w in watched:
        w.sample()


async def sample_until(watched: list[Watched], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.to_thread(_sample_all, watched)
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
