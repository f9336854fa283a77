"""Process control: services as separate OS processes, and a Redis that survives kill -9.

Everything here acts only on processes it started itself, by pid.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from fraudstream.stack import free_port, redis_answers, redis_server_binary


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process (Linux ``/proc``); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class Service:
    """One running replica: its process and whether we meant it to end."""

    name: str
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    ended_on_purpose: bool = False


class Fleet:
    """Services started as ``python -m shared.launcher NAME`` with one environment and log directory."""

    def __init__(self, env: dict[str, str], logdir: Path, command: list[str] | None = None):
        self.env, self.logdir = env, logdir
        self.command = command or [sys.executable, "-m", "shared.launcher"]
        """What runs a service, its name appended (a wrapper can change client options)."""
        self.replicas: list[Service] = []

    def start(self, name: str) -> Service:
        log = open(self.logdir / f"{name}.log", "ab")
        process = subprocess.Popen([*self.command, name], env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child holds its own descriptor
        replica = Service(name, process)
        self.replicas.append(replica)
        return replica

    def consuming(self, name: str) -> int:
        """How many times a replica of ``name`` said it started consuming (its log line)."""
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace").count(f"{name}: consuming") if path.exists() else 0

    def wait_consuming(self, name: str, times: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.consuming(name) < times:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not start consuming within {timeout_s}s")
            time.sleep(0.05)  # a child process starting: its log is all there is to poll

    def running(self, name: str) -> list[Service]:
        return [r for r in self.replicas if r.name == name and r.process.poll() is None]

    def kill(self, name: str, sig: int = signal.SIGKILL, oldest: bool = False) -> Service:
        """Send ``sig`` to the newest (or oldest) running replica of ``name``."""
        replica = self.running(name)[0 if oldest else -1]
        replica.ended_on_purpose = True
        replica.process.send_signal(sig)
        return replica

    def terminate(self, name: str, timeout_s: float, oldest: bool = False) -> tuple[int | None, float]:
        """SIGTERM the newest (or oldest) replica; its exit code (None: still running at
        ``timeout_s``) and how long it took."""
        replica = self.kill(name, signal.SIGTERM, oldest)
        started = time.monotonic()
        try:
            code = replica.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def unexpected_exits(self) -> list[tuple[str, int]]:
        """Replicas that ended without being told to: a crash."""
        return [(r.name, r.process.returncode) for r in self.replicas
                if not r.ended_on_purpose and r.process.poll() is not None]

    def rss(self) -> dict[str, int]:
        """RSS per running replica, named ``service#n``."""
        seen: dict[str, int] = {}
        out = {}
        for r in self.replicas:
            if r.process.poll() is None:
                seen[r.name] = seen.get(r.name, 0) + 1
                out[f"{r.name}#{seen[r.name]}"] = rss_bytes(r.process.pid)
        return out

    def stop(self, grace_s: float = 15.0) -> dict[str, int | None]:
        """SIGTERM every running replica, then SIGKILL what is left after ``grace_s``."""
        live = [r for r in self.replicas if r.process.poll() is None]
        for r in live:
            r.ended_on_purpose = True
            r.process.terminate()
        deadline = time.monotonic() + grace_s
        codes: dict[str, int | None] = {}
        for r in live:
            try:
                codes[r.name] = r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()
                codes[r.name] = None
        return codes


class AofRedis:
    """A redis-server of the run's own, on a free port, persisting every write to its
    append-only file: kill -9 it and start it again, and it comes back with its data."""

    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=open(self.workdir / "redis.log", "ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.url):  # loading the AOF answers LOADING: not ready yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not answer within {timeout_s}s")
            time.sleep(0.02)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9: whatever Redis acknowledged is in the AOF (written before the reply)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def used_memory(self) -> int:
        with redis.Redis(port=self.port, socket_timeout=2) as client:
            return int(client.info("memory")["used_memory"])

    def rss(self) -> int:
        return rss_bytes(self.process.pid) if self.process is not None else 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def service_env(base: dict[str, str], bootstrap: str, redis_url: str, topic_prefix: str,
                overrides: dict[str, str]) -> dict[str, str]:
    """The environment every service of a run shares (``FRAUDSTREAM_*``)."""
    return dict(base) | {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "FRAUDSTREAM_REDIS_URL": redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": topic_prefix,
        "FRAUDSTREAM_REDIS_PREFIX": "fs",
        "PYTHONUNBUFFERED": "1",
    } | overrides


__all__ = ["AofRedis", "Fleet", "Service", "rss_bytes", "service_env"]
