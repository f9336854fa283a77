"""SIGTERM stops a command that started its own local stack and services, and leaves nothing
behind: ``replay`` mid-run, and ``bench`` and the demo once their services run, each exit within a deadline,
and no process of theirs (services, Tansu, a redis-server they started) is left.

The command runs in a session of its own, so every process it started shares its process
group: after it exits, that group must empty (checked from ``/proc``, polling with a deadline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fraudstream.simulator.traffic import SimulatorConfig, simulate, write_csv
from fraudstream.stack import free_port
from shared.topics import TRANSACTIONS_RAW

pytestmark = pytest.mark.integration

EXIT_DEADLINE_S = 60.0
"""SIGTERM → exit: services get 15 s to drain, the broker and Redis 5 s each; more under load."""
START_DEADLINE_S = 180.0


def group_members(pgid: int) -> dict[int, str]:
    """pid → command line of every live process (zombies aside) in process group ``pgid``."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members[int(entry.name)] = cmdline
    return members


def until(condition, deadline_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {deadline_s:g}s: {what}")
        time.sleep(poll_s)


class Command:
    """A ``fraudstream`` command in its own session, its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "fraudstream.cli", *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or ()), daemon=True)
        self.reader.start()

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def own_stack_env() -> dict[str, str]:
    """The user's environment with a Redis URL where nothing answers: the command starts its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    return clean | {"FRAUDSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}


def assert_sigterm_leaves_nothing(command: Command, running) -> int:
    """SIGTERM once ``running(command, members)`` says so; the exit code."""
    pgid = command.proc.pid
    try:
        started = until(lambda: running(command, group_members(pgid)), START_DEADLINE_S,
                        "the command running with its stack and services")
        command.proc.send_signal(signal.SIGTERM)
        code = command.proc.wait(timeout=EXIT_DEADLINE_S)
        command.reader.join(timeout=5)
        until(lambda: not group_members(pgid), 10.0, f"every process of the group gone: {group_members(pgid)}")
    finally:
        command.kill_group()  # only if the test failed: nothing is left otherwise
    print(f"\nstopped {len(started)} processes; exit {code}; last lines: {command.lines[-3:]}")
    assert any("tansu" in c for c in started.values()) and any("redis-server" in c for c in started.values())
    return code


def _with_stack_and(services: int):
    def running(_command: Command, members: dict[int, str]) -> dict[int, str] | None:
        ok = (sum("-m shared.launcher" in c for c in members.values()) >= services
              and any("tansu" in c for c in members.values()) and any("redis-server" in c for c in members.values()))
        return members if ok else None
    return running


def test_sigterm_stops_a_replay_and_everything_it_started(tmp_path):
    path = tmp_path / "history.csv"
    config = SimulatorConfig(seed=21, n_cards=2000, n_merchants=200)
    write_csv((e for e in simulate(config, 60_000) if e.topic == TRANSACTIONS_RAW), path)
    command = Command("replay", str(path), "--label-delay", "1d", env=own_stack_env())
    services = _with_stack_and(4)

    def mid_replay(c: Command, members: dict[int, str]):
        return services(c, members) if c.said("replayed ") else None  # a progress line: scores came back

    assert assert_sigterm_leaves_nothing(command, mid_replay) == 130 and command.said("interrupted")


def test_sigterm_stops_a_bench_and_everything_it_started():
    command = Command("bench", "pipeline", env=own_stack_env())
    assert assert_sigterm_leaves_nothing(command, _with_stack_and(2)) == 130  # two started, the first waits


def test_sigterm_stops_the_demo_and_everything_it_started():
    command = Command("up", "--rate", "50", env=own_stack_env())  # runs until stopped
    assert assert_sigterm_leaves_nothing(command, _with_stack_and(3)) == 0  # the demo's own way: stop and say so
    assert command.said("stopped; services and the local stack are shut down")
