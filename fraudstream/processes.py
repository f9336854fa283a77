"""Services as child processes, as deployed: what the demo, the bench and the replay start.

Each service runs as ``python -m services NAME`` with its own environment and its output in
``LOGDIR/NAME.log``; stopping sends SIGTERM first so a service drains its batch and commits.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def start_services(names: list[str], env: dict[str, str], logdir: Path) -> list[subprocess.Popen]:
    """Start each named service in its own process; the caller owns (and must stop) them."""
    procs = []
    for name in names:
        with open(logdir / f"{name}.log", "ab") as log:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen([sys.executable, "-m", "services", name],
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
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
