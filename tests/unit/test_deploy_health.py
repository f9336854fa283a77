"""Probes and healthchecks in the deploy files ask the health server what it answers.

Kubernetes: startup and liveness on /healthz, readiness on /readyz, all on the metrics port,
with a start-up budget that covers the wait for Kafka and Redis. Compose: a service is
healthy when ready. The image's HEALTHCHECK: liveness. Prometheus's config passes promtool.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.health import Health
from shared.health_server import HealthServer
from shared.settings import Settings
from tests.servers import http_get

yaml = pytest.importorskip("yaml", reason="PyYAML comes with the dev extra")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("ingest", "features", "scoring", "learner", "monitor")


def containers() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                (c,) = doc["spec"]["template"]["spec"]["containers"]
                found[c["name"]] = c
    return found


def test_every_deployment_probes_healthz_and_readyz_on_the_metrics_port():
    found = containers()
    assert sorted(found) == sorted(SERVICES)
    for name, c in found.items():
        port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, (name, probe)
            assert port_names.get(get["port"], get["port"]) == 9100, (name, probe)
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= Settings().startup_wait_s, (
            f"{name}: the startup probe gives up before the service stops waiting for Kafka/Redis")
        live = c["livenessProbe"]
        assert live["periodSeconds"] * live["failureThreshold"] >= 60, f"{name}: liveness too quick to restart"


def test_compose_services_are_healthy_when_ready():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"] and "/readyz" in test[-1] and "FRAUDSTREAM_METRICS_PORT" in test[-1], name
    assert services["simulator"]["healthcheck"] == {"disable": True}


def test_the_image_healthcheck_is_liveness():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    (check,) = re.findall(r"HEALTHCHECK [^\n]*\\\n\s*CMD (.*)", dockerfile)
    assert "/healthz" in check and "FRAUDSTREAM_METRICS_PORT" in check


def test_the_paths_the_deploy_files_use_are_served():
    server = HealthServer(0, Health(), host="127.0.0.1")
    try:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert http_get(f"http://127.0.0.1:{server.port}{path}")[0] in (200, 503), path
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool (Debian package prometheus)")
def test_promtool_accepts_the_prometheus_config():
    result = subprocess.run(["promtool", "check", "config", "--syntax-only", str(ROOT / "deploy" / "prometheus.yml")],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
