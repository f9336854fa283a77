"""Prometheus scrapes every service; the Grafana dashboard queries only metrics that exist."""

from __future__ import annotations

import json
import re

from tests.deploy.files import DASHBOARD, METRICS_PORT, PROMETHEUS, SERVICES, compose, yaml

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
