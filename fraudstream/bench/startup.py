"""Starting the services under test so the measurement starts with the pipeline, not a burst:
downstream first, each in its own process with its own metrics port, and the first stage
only once every other one has joined its consumer group."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from shared.settings import Settings
from fraudstream.bench.probes import Watched, processes
from fraudstream.processes import start_services, stop_services
from fraudstream.stack import free_port


def start_watched(name: str, env: dict[str, str], logdir: Path) -> Watched:
    port = free_port()
    (proc,) = start_services([name], env | {"FRAUDSTREAM_METRICS_PORT": str(port)}, logdir)
    return Watched.of(name, proc, port)


async def start_downstream_first(settings: Settings, names: tuple[str, ...], env: dict[str, str],
                                 logdir: Path) -> list[Watched]:
    """Start every service but the first, wait until each has joined its consumer group,
    then the first. Started together, a service that joins late drains what piled up for
    it in a burst, and the first-to-last-output window measures that burst, not the pipeline."""
    later = [start_watched(name, env, logdir) for name in names[1:]]
    try:
        await joined(settings, names[1:])
    except BaseException:
        stop_services(processes(later))
        raise
    return [start_watched(names[0], env, logdir), *later]


async def joined(settings: Settings, services: tuple[str, ...], timeout_s: float = 60.0) -> None:
    """Wait until each service's consumer group is Stable with a member."""
    groups = {settings.group(name) for name in services}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while groups:
            for group in sorted(groups):  # one per request: Tansu 0.6 garbles a reply with several
                for reply in await admin.describe_consumer_groups([group]):
                    # (error, group, state, protocol type, protocol, members)
                    groups -= {g[1] for g in reply.groups if g[2] == "Stable" and g[5]}
            if groups and time.monotonic() > deadline:
                raise TimeoutError(f"groups not joined after {timeout_s:.0f}s: {', '.join(sorted(groups))}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
