"""Run the ``fraudstream`` command as a user does: its own process, settings from the environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass

from shared.settings import Settings


@dataclass
class Ran:
    code: int
    out: str
    err: str


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points a process at ``settings``' broker, Redis and prefixes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    return clean | {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAUDSTREAM_REDIS_URL": settings.redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "FRAUDSTREAM_REDIS_PREFIX": settings.redis_prefix,
    } | extra


def fraudstream(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> Ran:
    done = subprocess.run([sys.executable, "-m", "fraudstream.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout_s)
    return Ran(done.returncode, done.stdout, done.stderr)


async def fraudstream_async(*args: str, env: dict[str, str], timeout_s: float = 60) -> Ran:
    """The same, without blocking the test's event loop (services may run in it)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fraudstream.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    return Ran(proc.returncode or 0, out.decode(), err.decode())
