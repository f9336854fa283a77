"""dashboard wiring: the Faust app and its web views, run inside ``run(settings, stop)``.

Off the hot path: it only reads ``scores``, ``alerts``, ``labels``, ``deadletter``,
``drift.events`` and ``model.versions`` (writing nothing to them but dead letters of
records it cannot decode) and serves a live page on ``dashboard_port``:
``http://HOST:PORT/dashboard/``. Several replicas share the work as one consumer group
(the app id) and every one serves the page.

The Faust app is started as a service inside the caller's event loop instead of through
``faust.Worker``, which would take over the process (signal handlers, logging, the loop):
``fraudstream-service dashboard`` already owns those.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

import faust

from services.dashboard.app import INPUTS, SERVICE, Dashboard
from services.dashboard.probes import HealthReport
from services.dashboard.web import add_views
from shared.kafka import ensure_topics
from shared.lifecycle import wait_set
from shared.settings import Settings

log = logging.getLogger(__name__)
WATCH_S = 1.0


class DashboardCrashed(RuntimeError):
    """A part of the Faust app (table recovery, the consumer) crashed: restart the process."""


async def until_stopped_or_crashed(app: faust.App, stop: asyncio.Event, report: HealthReport | None = None) -> None:
    """Return on ``stop``; raise when the app crashed; update the health report every ``WATCH_S``.

    A crashed part of a Faust app stops working while the rest goes on (the page would keep
    serving numbers that no longer move), so the service exits instead and its restart
    recovers the tables from their changelogs.
    """
    while not stop.is_set():
        if report is not None:
            report.update()
        if app.crashed:
            raise DashboardCrashed(f"the dashboard's Faust app crashed: {app.crash_reason!r}")
        await wait_set(stop, WATCH_S)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await ensure_topics(settings, INPUTS)
    dashboard = Dashboard(settings)
    add_views(dashboard, stop)
    app = dashboard.app
    await app.start()
    log.info("dashboard serving %s/dashboard/", str(app.conf.canonical_url).rstrip("/"))
    report = HealthReport(app, SERVICE, settings.liveness_stale_s)
    try:
        await until_stopped_or_crashed(app, stop, report)
    finally:
        report.close()
        await app.stop()
        # Faust creates its data directories even for in-memory tables; nothing in them outlives a run
        shutil.rmtree(app.conf.datadir, ignore_errors=True)
