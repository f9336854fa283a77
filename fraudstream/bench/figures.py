"""The bench's results: one dataclass per kind of run, and the lines it prints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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
    machine: dict[str, Any]
    stale_outputs: int = 0
    share_of_fused: float = 0.0
    """End to end over the fused single-process batched loop (``fused.py``): the price of services."""

    def lines(self) -> list[str]:
        m, pt, nv, fu = (self.machine, self.baselines["passthrough"], self.baselines["naive"],
                         self.baselines["fused"])
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
            f"    fused batched loop:   {fu['throughput_per_s']:>7,.0f}/s ({_cpu(fu)})"
            f"  -> end to end is {100 * self.share_of_fused:.1f} % of it",
        ]
        return out


def _cpu(baseline: dict[str, float]) -> str:
    ours = baseline["cpu_s"] + baseline.get("broker_cpu_s", 0) + baseline["redis_cpu_s"] + baseline["bench_cpu_s"]
    return (f"CPU {baseline['cpu_s']:.1f} s, broker {baseline.get('broker_cpu_s', 0):.1f} s,"
            f" Redis {baseline['redis_cpu_s']:.1f} s, other processes {max(0.0, baseline['machine_cpu_s'] - ours):.1f} s")
