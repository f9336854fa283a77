"""Is the service alive, and is it ready? Served with its metrics on one HTTP port.

- ``/healthz`` (liveness): 200 while every batch loop has gone round within
  ``liveness_stale_s``; 503 with a JSON reason when one is stuck, so the orchestrator
  restarts it. The server runs in its own thread, so a blocked event loop still gets an answer.
- ``/readyz`` (readiness): 200 when every registered check passes: the consumer group is
  joined (partitions assigned, or none because replicas outnumber partitions), Redis answers
  PING, and whatever a service adds with :func:`add_check` (scoring: its model is loaded).
- ``/metrics``: Prometheus; any other path is 404 (the server: :mod:`shared.health_server`).

A check is a plain function run in the server's thread: it returns ``True``/``None`` when
ready, ``False`` or a reason string when not, and may raise (the exception is the reason).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from shared import lag
from shared.redis import make_sync_redis
from shared.settings import Settings

Check = Callable[[], "bool | str | None"]


class Health:
    """Heartbeats of the batch loops and the readiness checks of one process."""

    def __init__(self, stale_s: float = 60.0):
        self.stale_s = stale_s
        self._beats: dict[str, float] = {}
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def beat(self, loop: str) -> None:
        self._beats[loop] = time.monotonic()

    def forget(self, loop: str) -> None:
        self._beats.pop(loop, None)

    def add_check(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks[name] = check

    def remove_check(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def clear(self) -> None:
        """Forget every loop and check: a fresh process (tests run many services in one)."""
        with self._lock:
            self._beats.clear()
            self._checks.clear()

    def liveness(self) -> tuple[bool, dict]:
        now = time.monotonic()
        if not self._beats:
            return False, {"reason": "no batch loop running yet"}
        ages = {loop: round(now - at, 3) for loop, at in list(self._beats.items())}
        stale = {loop: age for loop, age in ages.items() if age > self.stale_s}
        if stale:
            return False, {"reason": f"batch loop stuck for more than {self.stale_s:g}s", "stale": stale}
        return True, {"heartbeat_age_s": ages}

    def readiness(self) -> tuple[bool, dict]:
        with self._lock:
            checks = dict(self._checks)
        if not checks:
            return False, {"reason": "nothing registered yet (starting)"}
        failing = {}
        for name, check in checks.items():
            try:
                result = check()
            except Exception as exc:  # a failing dependency is the answer, not a server error
                result = f"{type(exc).__name__}: {exc}"
            if result is False or isinstance(result, str):
                failing[name] = result or "failing"
        if failing:
            return False, {"reason": "; ".join(f"{k}: {v}" for k, v in failing.items()), "failing": failing}
        return True, {"checks": sorted(checks)}


HEALTH = Health()
add_check = HEALTH.add_check
remove_check = HEALTH.remove_check


async def heartbeat(service: str, consumer: AIOKafkaConsumer, settings: Settings) -> None:
    """The runner calls this on every turn of its batch loop: beat, and refresh the lag gauge."""
    HEALTH.stale_s = settings.liveness_stale_s
    HEALTH.beat(service)
    await lag.report(settings.group(service), consumer, settings.lag_every_s)


class GroupMembership(ConsumerRebalanceListener):
    """Follows a consumer's group: joined (with its partitions) or not (starting, rebalancing)."""

    def __init__(self) -> None:
        self.assigned: set | None = None
        self.since = time.monotonic()

    def on_partitions_revoked(self, revoked) -> None:
        self.assigned, self.since = None, time.monotonic()

    def on_partitions_assigned(self, assigned) -> None:
        self.assigned, self.since = set(assigned), time.monotonic()

    def check(self) -> bool | str:
        if self.assigned is None:
            return f"not in the consumer group yet (joining for {time.monotonic() - self.since:.1f}s)"
        return True  # an empty assignment is legitimate: more replicas than partitions


def watch(service: str, settings: Settings, membership: GroupMembership) -> None:
    """Register what every consuming service needs to be ready: its group joined, Redis answering."""
    redis = make_sync_redis(settings)
    _watched[service] = (redis, settings.group(service))
    add_check(f"{service} consumer group", membership.check)
    add_check(f"{service} redis", lambda: bool(redis.ping()))


def unwatch(service: str) -> None:
    remove_check(f"{service} consumer group")
    remove_check(f"{service} redis")
    HEALTH.forget(service)
    watched = _watched.pop(service, None)
    if watched is not None:
        redis, group = watched
        redis.close()
        lag.forget(group)


_watched: dict[str, tuple] = {}
