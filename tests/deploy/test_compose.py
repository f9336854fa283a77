"""docker-compose.yml: Kafka (KRaft), Redis 7, one container per service running
``fraudstream-service NAME`` from the services image, and the simulator from the tools image."""

from __future__ import annotations

import base64
import re

from services import SERVICES as PIPELINE
from tests.deploy.files import (
    COMPOSE,
    METRICS_PORT,
    PREFIX,
    ROOT,
    SERVICE_COMMAND,
    SERVICES,
    SHARED_ENV,
    SINGLETONS,
    TOOLS_COMMAND,
    assert_real_settings,
    compose,
    compose_argv,
    compose_env,
    settings_from,
    stages,
)


def test_the_deploy_files_know_every_pipeline_service():
    assert sorted(PIPELINE) == sorted(SERVICES), "a service was added or renamed: update deploy/ too"


def test_compose_runs_one_container_per_service():
    services = compose()["services"]
    for name in SERVICES:
        assert name in services, f"no container for {name}"
        svc = services[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert svc["build"]["target"] == "service"
        assert compose_argv(svc) == [SERVICE_COMMAND, name]
        assert not svc.get("profiles"), f"{name} must start with a plain `docker compose up`"
        for dep in ("kafka", "redis"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy", (name, dep)
    for name in SINGLETONS:
        svc = services[name]
        assert svc.get("scale", 1) == 1 and svc.get("deploy", {}).get("replicas", 1) == 1, name


def test_every_build_target_is_a_dockerfile_stage_and_each_image_name_one_target():
    targets: dict[str, set[str]] = {}
    for name, svc in compose()["services"].items():
        if svc.get("build"):
            assert svc["build"]["target"] in stages(), name
            targets.setdefault(svc["image"], set()).add(svc["build"]["target"])
    assert all(len(t) == 1 for t in targets.values()), f"one image name built from two targets: {targets}"


def test_the_simulator_runs_the_cli_from_the_tools_image():
    from fraudstream.cli import app

    sim = compose()["services"]["simulator"]
    assert sim["profiles"] == ["demo"]
    assert sim["build"]["target"] == "tools"
    assert compose_argv(sim) == [TOOLS_COMMAND, "simulate", "--rate", "200"]
    assert "simulate" in {c.name or c.callback.__name__ for c in app.registered_commands}


def test_compose_infrastructure_has_healthchecks_and_profiles():
    services = compose()["services"]
    assert services["kafka"]["image"].startswith(("apache/kafka:", "bitnami/kafka:"))
    assert "broker,controller" in str(services["kafka"]["environment"]), "Kafka must run in KRaft mode"
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("kafka", "redis"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name

    # Every dependency names a real service; every named volume and config is declared.
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
            else:
                assert src in compose().get("volumes", {}), f"{name} uses undeclared volume {src}"
        for cfg in svc.get("configs", []):
            assert cfg["source"] in compose().get("configs", {}), f"{name} uses undeclared config {cfg}"


def test_kafka_cluster_id_is_a_kraft_id():
    cluster_id = compose()["services"]["kafka"]["environment"]["CLUSTER_ID"]
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_compose_environment_is_settings(monkeypatch):
    interpolated = re.findall(r"\$\{(\w+)", COMPOSE.read_text())
    assert_real_settings(interpolated, "docker-compose.yml interpolation")
    for name, svc in compose()["services"].items():
        env = compose_env(svc)
        assert_real_settings(env, f"compose service {name}")
        if name in SERVICES:
            missing = SHARED_ENV - set(env)
            assert not missing, f"{name} lacks {sorted(missing)}"
            s = settings_from({k: v for k, v in env.items() if k.startswith(PREFIX)}, monkeypatch)
            assert s.metrics_port == METRICS_PORT
            assert s.kafka_bootstrap == "kafka:9092" and s.redis_url.startswith("redis://redis:")
