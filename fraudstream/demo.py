"""``fraudstream up``: the local stack, every service as its own process, simulated traffic,
and a live view of what comes out (alerts as they happen, a status line every few seconds).

The order a user can follow: the stack comes up; a champion (v1) trained offline on an
earlier day of the same world is announced, so alerts come from the first transaction;
the services start, each serving metrics and health on its own port, and the demo waits
until every one is ready; then traffic flows for ``duration_s`` (counted from then: a
slow start-up does not eat the demo), and everything stops within about two seconds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from fraudstream.live import LiveView
from fraudstream.processes import metrics_ports, start_services, stop_services
from fraudstream.simulator.publish import Progress, publish
from fraudstream.simulator.traffic import SimulatorConfig
from fraudstream.stack import LocalStack, free_port
from fraudstream.warmstart import announce_champion, warm_model
from shared.settings import Settings

DEMO_ENV = {
    "FRAUDSTREAM_PUBLISH_EVERY_S": "10", "FRAUDSTREAM_PUBLISH_EVERY_LABELS": "500",
    "FRAUDSTREAM_DRIFT_WARMUP_S": "86400",
}
"""Demo defaults (the user's own environment still wins): a version every ten seconds, and
the monitor's reference taken after one event day, when the empty feature store's 24-hour
windows have filled (at the default rate and population, about a minute of traffic)."""
DRIFT_ENV = {
    "FRAUDSTREAM_RETRAIN_MIN_LABELS_SINCE_DRIFT": "300", "FRAUDSTREAM_RETRAIN_MIN_FRAUDS_SINCE_DRIFT": "40",
    "FRAUDSTREAM_RETRAIN_COOLDOWN_S": "86400",
}
"""With ``--drift``: a retrain on labels since the change starts once these are in (seconds, not
minutes), and the monitor asks at most once per event day (about a minute here: the default ten
event minutes pass in half a second at the demo's time scale, one request per evaluation)."""
DRIFT_AFTER_S = 75.0
WARM_TRANSACTIONS = 8000
STATUS_EVERY_S = 3.0
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 1.5


def with_drift(config: SimulatorConfig, rate: float, drift_after: int | None) -> SimulatorConfig:
    """The world changes ``DRIFT_AFTER_S`` into the traffic (or after ``drift_after`` transactions):
    fraud moves to small online payments while genuine baskets double (what the champion
    learned about amounts turns upside down), and there is more of it."""
    return config.model_copy(update={
        "drift_at": drift_after or int(rate * DRIFT_AFTER_S), "drift_pattern": "low_value",
        "drift_pattern_share": 0.7, "drift_amount_factor": 2.0, "drift_fraud_rate": 3 * config.fraud_rate})


def metrics_base(count: int) -> int:
    """A first port with ``count`` free ones from it (one per service)."""
    for _ in range(50):
        base = free_port()
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def wait_ready(ports: dict[str, int], procs: dict[str, subprocess.Popen], logdir: Path,
                     stop: asyncio.Event) -> None:
    """Until every service answers /readyz with 200, or Ctrl-C; a service that exits is an error
    (unless Ctrl-C, which the terminal sends to the services too)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = dict(ports)
    while waiting and not stop.is_set():
        for name, proc in procs.items():
            if proc.poll() is not None and not stop.is_set():
                raise RuntimeError(f"service {name} exited with {proc.returncode}; see {logdir}/{name}.log")
        ready = await asyncio.gather(*(asyncio.to_thread(_ready, port) for port in waiting.values()))
        waiting = {name: port for (name, port), ok in zip(waiting.items(), ready) if not ok}
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(waiting)}; see {logdir}/")
        await asyncio.sleep(0.25)


def urls(ports: dict[str, int], env: dict[str, str]) -> list[str]:
    lines = [f"  {name:<9} http://127.0.0.1:{port}/metrics  /healthz  /readyz" for name, port in ports.items()]
    dashboard = env.get("FRAUDSTREAM_DASHBOARD_PORT")
    if dashboard:
        lines.insert(0, f"  the live page: http://127.0.0.1:{dashboard}/dashboard/")
    return lines


async def run_demo(base: Settings, services: list[str], config: SimulatorConfig, rate: float,
                   duration_s: float | None, external: bool, stop_demo: asyncio.Event, emit=print,
                   drift: bool = False) -> None:
    began = time.monotonic()
    stack = None if external else LocalStack(base).start()
    settings = base if stack is None else stack.settings
    env = DEMO_ENV | (DRIFT_ENV if drift else {}) | (stack.env() if stack is not None else dict(os.environ))
    if stack is not None and "FRAUDSTREAM_DASHBOARD_PORT" not in os.environ:
        # a port of its own, like the metrics ports: another dashboard on this host must not stop the demo
        env["FRAUDSTREAM_DASHBOARD_PORT"] = str(free_port())
    logdir = stack.workdir if stack is not None else Path(".")
    emit(f"broker {settings.kafka_bootstrap}, redis {settings.redis_url}; service logs in {logdir}/")
    procs: list[subprocess.Popen] = []
    stop_view = asyncio.Event()
    viewer: asyncio.Task | None = None
    try:
        model = await asyncio.to_thread(warm_model, config, WARM_TRANSACTIONS)
        v1 = await announce_champion(settings, model)
        emit(f"champion {v1.version}: trained offline on a day of the same world before this one "
             f"({v1.training_window.labels_seen} labels, {v1.training_window.frauds_seen} frauds)")
        first_port = metrics_base(len(services))
        procs = start_services(services, env, logdir, metrics_base=first_port)
        ports = metrics_ports(services, first_port)
        emit("services: metrics and health at")
        for url in urls(ports, env):
            emit(url)
        await wait_ready(ports, dict(zip(services, procs)), logdir, stop_demo)
        if stop_demo.is_set():
            return
        warmup_h = float(env.get("FRAUDSTREAM_DRIFT_WARMUP_S", 0)) / 3600
        if warmup_h:
            emit(f"monitor: the first {warmup_h:g} event hours are its warm-up (the feature store starts empty); "
                 "drift is judged after")
        if drift:
            assert isinstance(config.drift_at, int)  # the demo's --drift counts transactions
            emit(f"drift: the world changes after {config.drift_at} transactions (~{config.drift_at / rate:.0f}s)")
        emit(f"all {len(services)} services ready after {time.monotonic() - began:.0f}s; traffic starts at "
             f"{rate:.0f} tx/s" + (f" for {duration_s:.0f}s" if duration_s else " until Ctrl-C"))
        view = LiveView(settings, emit)
        viewer = asyncio.create_task(view.run(stop_view))
        await view.started.wait()
        await traffic(settings, config, rate, duration_s, stop_demo, view, dict(zip(services, procs)), logdir, emit)
    finally:
        stopping = time.monotonic()
        stop_view.set()
        if viewer is not None:
            await viewer
        stop_services(procs, grace_s=STOP_GRACE_S)  # before the broker: a client whose broker is gone cannot close
        services_s = time.monotonic() - stopping
        if stack is not None:
            stack.stop()
        emit(f"stopped in {time.monotonic() - stopping:.1f}s: services ({services_s:.1f}s), then the local stack")


async def traffic(settings: Settings, config: SimulatorConfig, rate: float, duration_s: float | None,
                  stop_demo: asyncio.Event, view: LiveView, procs: dict[str, subprocess.Popen], logdir: Path,
                  emit) -> None:
    """Publish until ``duration_s`` or Ctrl-C, printing the status every few seconds."""
    stop = asyncio.Event()
    last = [0.0]

    def tick(progress: Progress) -> None:
        if progress.elapsed_s - last[0] >= STATUS_EVERY_S:
            last[0] = progress.elapsed_s
            for text in view.status(progress.elapsed_s, progress.transactions, progress.labels, progress.corrupted):
                emit(text)
            for name, proc in procs.items():
                if proc.poll() is not None and not (stop.is_set() or stop_demo.is_set()):
                    raise RuntimeError(f"service {name} exited with {proc.returncode}; see {logdir}/{name}.log")

    async def until_deadline() -> None:
        waits = [asyncio.create_task(stop_demo.wait())]
        await asyncio.wait(waits, timeout=duration_s)
        waits[0].cancel()
        stop.set()

    deadline = asyncio.create_task(until_deadline())
    try:
        progress = await publish(settings, config, rate, stop, duration_s=duration_s, on_tick=tick, bad_share=0.01)
    finally:
        deadline.cancel()
    await asyncio.sleep(0.3)  # the view takes what is already on the topics
    for text in view.status(progress.elapsed_s, progress.transactions, progress.labels, progress.corrupted):
        emit(text)
    if progress.caught_up:
        emit("the simulated clock caught up with the real one; stopping")
