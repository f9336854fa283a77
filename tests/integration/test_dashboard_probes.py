"""The dashboard's probes on its own port: ``/healthz`` (its agents run) and ``/readyz`` (its
group joined, its tables recovered), each 200, or 503 with the reason in JSON.

The dashboard is not on the batch runner, whose heartbeats and checks ``/healthz`` and
``/readyz`` on the metrics port follow; it reports its own there (``probes.HealthReport``).
"""

from __future__ import annotations

import asyncio
import shutil

import orjson
import pytest

from services.dashboard import probes, service
from services.dashboard.app import INPUTS, Dashboard
from shared.health import HEALTH
from shared.health_server import HealthServer
from tests.integration.test_dashboard import dashboard_settings
from tests.servers import until_status

pytestmark = pytest.mark.integration


def probe(settings, path: str) -> str:
    return f"http://127.0.0.1:{settings.dashboard_port}{path}"


def test_an_app_not_started_is_neither_alive_nor_ready(settings):
    app = Dashboard(dashboard_settings(settings)).app
    try:
        assert probes.liveness(app) == (False, {"reason": "starting"})
        assert probes.readiness(app) == (False, {"reason": "starting"})
    finally:
        shutil.rmtree(app.conf.datadir, ignore_errors=True)


async def test_probes_follow_the_app_through_start_and_rebalance(settings, start_service):
    first, second = dashboard_settings(settings), dashboard_settings(settings)
    start_service(service.run, first)
    ready = orjson.loads(await until_status(probe(first, "/readyz"), 200, timeout_s=60))
    assigned = {tp.rsplit(":", 1)[0] for tp in ready["assigned"]}
    assert {first.topic(t) for t in INPUTS} <= assigned, ready
    alive = orjson.loads(await until_status(probe(first, "/healthz"), 200))
    assert alive["status"] == "ok"
    assert alive["agents"] == sorted([f"observe-{t}" for t in INPUTS] + ["tally"]), alive

    # A second replica is alive before it is ready: it answers 503 until it joined and recovered.
    start_service(service.run, second)
    unready = orjson.loads(await until_status(probe(second, "/readyz"), 503, timeout_s=60))
    assert unready["status"] == "unavailable" and unready["reason"], unready
    await until_status(probe(second, "/readyz"), 200, timeout_s=60)
    await until_status(probe(first, "/readyz"), 200, timeout_s=60)
    await asyncio.gather(*(until_status(probe(s, "/healthz"), 200) for s in (first, second)))


async def test_the_metrics_port_reports_the_dashboard_as_well(settings, start_service):
    """``fraudstream-service dashboard`` serves /healthz, /readyz and their gauges on the metrics port too."""
    HEALTH.clear()  # earlier tests ran other services in this process
    server = HealthServer(0)
    try:
        metrics_url = f"http://127.0.0.1:{server.port}"
        s = dashboard_settings(settings)
        unready = orjson.loads(await until_status(f"{metrics_url}/readyz", 503))
        assert unready["reason"] == "nothing registered yet (starting)"
        start_service(service.run, s)
        ready = orjson.loads(await until_status(f"{metrics_url}/readyz", 200, timeout_s=60))
        assert ready["checks"] == ["dashboard"]
        alive = orjson.loads(await until_status(f"{metrics_url}/healthz", 200))
        assert list(alive["heartbeat_age_s"]) == ["dashboard"]
        scraped = (await until_status(f"{metrics_url}/metrics", 200)).decode()
        assert "\nfraudstream_healthy 1.0\n" in scraped and "\nfraudstream_ready 1.0\n" in scraped
    finally:
        server.close()
        HEALTH.clear()


async def test_a_crashed_app_is_not_alive(settings):
    app = Dashboard(dashboard_settings(settings)).app
    await app.start()
    try:
        await app.tables.recovery.crash(RuntimeError("recovery failed"))
        alive, detail = probes.liveness(app)
        assert not alive and "recovery failed" in detail["reason"], detail
        assert probes.readiness(app) == (alive, detail)
    finally:
        await app.stop()
        shutil.rmtree(app.conf.datadir, ignore_errors=True)
