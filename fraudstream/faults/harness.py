"""One fault run: a Redis of its own (AOF), fresh topics, every service as its own process,
the read-back following the outputs, and the settle that waits until all is accounted for."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Set
from pathlib import Path

from fraudstream.faults.accounting import ReadBack, expected_labels
from fraudstream.faults.load import Workload
from fraudstream.faults.processes import AofRedis, Fleet, service_env
from fraudstream.stack import free_port
from services import SERVICES
from shared.kafka import ensure_topics
from shared.settings import Settings

RUN_ENV = {
    "FRAUDSTREAM_PARTITIONS": "2",
    "FRAUDSTREAM_SESSION_TIMEOUT_MS": "3000",
    "FRAUDSTREAM_HEARTBEAT_INTERVAL_MS": "500",
    "FRAUDSTREAM_FETCH_MAX_WAIT_MS": "10",
    "FRAUDSTREAM_PUBLISH_EVERY_S": "1",
    "FRAUDSTREAM_PUBLISH_EVERY_LABELS": "200",
    # Every label is learned (no sampling of genuine ones), so "learned exactly once" is a count.
    "FRAUDSTREAM_GENUINE_SAMPLE_RATE": "1.0",
    # No implicit genuine labels (a run spans days of event time, not a year).
    "FRAUDSTREAM_LABEL_MATURITY_S": str(365 * 86400),
    # A label waits this long for its vector under a fault; poison labels are dead-lettered after it.
    "FRAUDSTREAM_LABEL_WAIT_S": "20",
    # Retrains would replace the champion's learned count: requests are refused for want of labels.
    "FRAUDSTREAM_RETRAIN_MIN_LABELS": "1000000000",
    "FRAUDSTREAM_RETRAIN_MIN_LABELS_SINCE_DRIFT": "1000000000",
    "FRAUDSTREAM_LOG_LEVEL": "INFO",
}


class Run:
    """``async with Run(...) as run``: everything started; ``run.seen`` reads outputs back."""

    def __init__(self, name: str, bootstrap: str, workdir: Path, replicas: dict[str, int] | None = None,
                 env: dict[str, str] | None = None, follow: tuple[str, ...] = (), read_back: bool = True,
                 command: list[str] | None = None):
        self.name, self.workdir = name, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.redis = AofRedis(workdir)
        self.bootstrap = bootstrap
        self.replicas = {name: 1 for name in SERVICES} | (replicas or {})
        self.extra_env = env or {}
        self.follow, self.read_back, self.command = follow, read_back, command
        self.prefix = f"f{uuid.uuid4().hex[:8]}."
        self.warm: set[str] = set()
        """Transactions sent before the services were all up: not counted in the recovery gap."""

    async def __aenter__(self) -> Run:
        self.redis.start()
        # the dashboard's web port is the run's own: another dashboard on this host (a soak, the
        # demo) must not make this one exit with "address already in use"
        own = {"FRAUDSTREAM_DASHBOARD_PORT": str(free_port())}
        env = service_env(dict(os.environ), self.bootstrap, self.redis.url, self.prefix,
                          RUN_ENV | own | self.extra_env)
        fields: dict = {k.removeprefix("FRAUDSTREAM_").lower(): v for k, v in env.items()
                        if k.startswith("FRAUDSTREAM_")}
        self.settings = Settings(**fields)
        await ensure_topics(self.settings)
        self.fleet = Fleet(env, self.workdir, self.command)
        for service, n in self.replicas.items():
            for _ in range(n):
                self.fleet.start(service)
        self.seen = ReadBack(self.settings, accepted={topic: Counter() for topic in self.follow})
        if self.read_back:
            await self.seen.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        if self.read_back:
            await self.seen.__aexit__(*exc)
        self.exit_codes = self.fleet.stop()
        self.redis.stop()

    async def settled(self, workload: Workload, extra_scored: Set[str] = frozenset(), letters: int = 0,
                      timeout_s: float = 90.0) -> bool:
        """Wait until every transaction is scored, every label learned and ``letters`` dead
        letters are in; then a quiet while, so a label learned twice would show."""
        tx_ids = {tx.tx_id for tx in workload.transactions} | set(extra_scored)
        labels = expected_labels(workload.emissions)

        def done(seen: ReadBack) -> bool:
            return (len(seen.letters) >= letters and seen.labels_learned >= labels
                    and tx_ids <= seen.scores.keys())

        ok = await self.seen.until(done, timeout_s)
        quiet = float(RUN_ENV["FRAUDSTREAM_PUBLISH_EVERY_S"]) * 3
        n_versions = len(self.seen.versions)
        await self.seen.until(lambda s: len(s.versions) > n_versions + 2, quiet)
        return ok
