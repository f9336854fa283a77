"""A redis-server of a test's own, on its own port, that the test can stop and start again
(the machine's shared Redis on 6379 is never touched). Data survives a restart (RDB file)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # a process starting: nothing to poll but the port
        client.close()

    def stop(self) -> None:
        """Save to disk, then end the process (by its pid, the one this object started)."""
        if self.process is None:
            return
        client = redis.Redis(port=self.port)
        client.save()
        client.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None
