"""The Kubernetes manifests: one Deployment per service running ``fraudstream-service NAME``,
settings from one ConfigMap, singletons that never overlap, scoring that scales within the
partitions."""

from __future__ import annotations

from tests.deploy.files import (
    K8S,
    METRICS_PORT,
    PREFIX,
    SERVICES,
    SHARED_ENV,
    SINGLETONS,
    assert_real_settings,
    compose,
    compose_env,
    configmap,
    deployments,
    k8s_docs,
    k8s_files,
    k8s_objects,
    settings_from,
    yaml,
)


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
