"""Services as child processes, as deployed: what the demo, the bench and the replay start.

Each service runs as ``python -m shared.launcher NAME`` with its own environment and its output in
``LOGDIR/NAME.log``; stopping sends SIGTERM first so a service drains its batch and commits.

Processes on one host cannot share a port, so with ``metrics_base`` each service serves
``/metrics``, ``/healthz`` and ``/readyz`` on its own: the base port plus its index.

>>> service_env(["ingest", "scoring"], {"X": "1"}, metrics_base=9100)["scoring"]
{'X': '1', 'FRAUDSTREAM_METRICS_PORT': '9101'}
>>> service_env(["ingest"], {"FRAUDSTREAM_METRICS_PORT": "9000"}, metrics_base=None)["ingest"]
{'FRAUDSTREAM_METRICS_PORT': '9000'}
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def service_env(names: list[str], env: dict[str, str], metrics_base: int | None) -> dict[str, dict[str, str]]:
    """Each service's environment: ``env``, with its own metrics port when ``metrics_base`` is
    given (one shared ``FRAUDSTREAM_METRICS_PORT`` makes all but the first fail: address in use)."""
    if metrics_base is None:
        return {name: dict(env) for name in names}
    return {name: env | {"FRAUDSTREAM_METRICS_PORT": str(metrics_base + i)} for i, name in enumerate(names)}


def metrics_ports(names: list[str], metrics_base: int | None) -> dict[str, int]:
    """Where each service started with ``metrics_base`` serves its metrics and health."""
    return {} if metrics_base is None else {name: metrics_base + i for i, name in enumerate(names)}


def start_services(names: list[str], env: dict[str, str], logdir: Path,
                   metrics_base: int | None = None) -> list[subprocess.Popen]:
    """Start each named service in its own process; the caller owns (and must stop) them."""
    procs = []
    for name, own_env in service_env(names, env, metrics_base).items():
        with open(logdir / f"{name}.log", "ab") as log:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen([sys.executable, "-m", "shared.launcher", name],
                                          env=own_env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop_services(procs: list[subprocess.Popen], grace_s: float = 15.0) -> None:
    """SIGTERM (services drain and commit), then SIGKILL whatever is left after ``grace_s``."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does. Python's default for SIGTERM is to die at once,
    running no ``finally``, so the services and the local stack a command started would be left
    running; as SIGINT it raises KeyboardInterrupt (inside ``asyncio.run``: cancels the main
    task first), and the blocks that stop them run. A second SIGTERM while they stop is ignored."""

    def interrupt(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
