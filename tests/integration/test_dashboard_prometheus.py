"""Every query of the Grafana dashboard, run by a real Prometheus scraping the real pipeline.

The pipeline (all five services) runs in this process on the test broker and Redis, with
simulated traffic, labels, a few corrupt records and a label for an unknown transaction;
one health server exports its metrics; a Prometheus of our own scrapes it every second.
Each panel's and annotation's expression (Grafana's ``$__rate_interval`` made concrete) must
parse, and return at least one series over the run (a range query, as Grafana draws a panel),
so no panel of the dashboard is broken or empty by design.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from fraudstream.simulator.publish import publish
from fraudstream.simulator.traffic import SimulatorConfig
from fraudstream.stack import free_port
from services.features import service as features
from services.ingest import service as ingest
from services.learner import service as learner
from services.monitor import service as monitor
from services.scoring import service as scoring
from shared.codec import decode
from shared.events import Score
from shared.health import HEALTH
from shared.health_server import HealthServer
from shared.topics import LABELS_RAW, SCORES
from tests.kafka_helpers import Collector, produce
from tests.servers import http_get, until_status

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (Debian: apt-get install prometheus; "
                                                  ".ci/run installs it)"),
]
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fraudstream-dashboard.json"
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "1s", "$__range": "5m"}
CONFIG = SimulatorConfig(seed=5, n_cards=300, n_merchants=40, fraud_rate=0.03, label_genuine=True,
                         genuine_label_share=0.3, label_delay_mean=timedelta(days=2), label_delay_sigma=0.3)


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    found = [(f"{p['title']} [{t['refId']}]", t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    found += [(f"annotation {a['name']}", a["expr"]) for a in dash["annotations"]["list"] if "expr" in a]
    return found


def concrete(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


@pytest.fixture
def metrics_url():
    HEALTH.clear()  # earlier tests ran other services in this process
    server = HealthServer(0, host="127.0.0.1")
    yield f"127.0.0.1:{server.port}"
    server.close()
    HEALTH.clear()


@pytest.fixture
def prometheus(metrics_url, tmp_path):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "fraudstream", "static_configs": [{"targets": [metrics_url]}]}],
    }))
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def query(base: str, expr: str, since: float | None = None) -> tuple[int, dict]:
    """An instant query; with ``since``, a range query from then to now, as Grafana draws a panel."""
    if since is None:
        status, body = http_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    else:
        args = {"query": expr, "start": since, "end": time.time(), "step": 1}
        status, body = http_get(f"{base}/api/v1/query_range?{urllib.parse.urlencode(args)}")
    return status, json.loads(body) if body else {}


async def test_every_dashboard_query_returns_series_from_the_running_pipeline(settings, start_service, prometheus):
    s = settings.model_copy(update={"publish_every_labels": 100, "publish_every_s": 1.0, "genuine_sample_rate": 1.0,
                                    "drift_window": 100, "drift_evaluate_every": 50, "lag_every_s": 0.5})
    for service in (ingest, features, scoring, learner, monitor):
        start_service(service.run, s)
    await until_status(f"{prometheus}/-/ready", 200)
    started = time.time()
    deadline = time.monotonic() + 30
    while not query(prometheus, 'up{job="fraudstream"} == 1')[1].get("data", {}).get("result"):
        assert time.monotonic() < deadline, "Prometheus did not scrape the pipeline before the traffic"
        await asyncio.sleep(0.2)  # a scrape before any traffic, so every counter's rise is seen

    async with Collector(s, SCORES) as seen:
        await publish(s, CONFIG, rate=1500, stop=asyncio.Event(), n_transactions=1500, bad_share=0.02)
        unknown = dict(tx_id="never-seen", card_id="card-x", is_fraud=True, source="chargeback",
                       labelled_at=datetime.now(UTC).isoformat())
        await produce(s, LABELS_RAW, [(b"card-x", orjson.dumps(unknown))])
        await seen.until(lambda c: any(decode(r.value, Score).model_version != "untrained" for r in c.of(SCORES)),
                         timeout_s=90)

    pending = dict(dashboard_queries())
    for name, expr in pending.items():  # a query that does not parse fails at once, whatever the data
        status, body = query(prometheus, concrete(expr))
        assert status == 200 and body["status"] == "success", f"{name}: {expr!r} → {status} {body}"
    deadline = time.monotonic() + 60
    while pending:
        for name, expr in list(pending.items()):
            if query(prometheus, concrete(expr), since=started)[1]["data"]["result"]:
                del pending[name]
        assert time.monotonic() < deadline, f"queries without series after 60 s: {json.dumps(pending, indent=1)}"
        await asyncio.sleep(0.5)  # Prometheus scrapes every second; the services keep running meanwhile
