"""The health server's answers, path by path, from a Health of our own (no broker needed)."""

from __future__ import annotations

import json
import time

import pytest

from shared.health import GroupMembership, Health
from shared.health_server import HealthServer
from tests.servers import http_get


@pytest.fixture
def served():
    health = Health(stale_s=30)
    server = HealthServer(0, health, host="127.0.0.1")
    yield health, f"http://127.0.0.1:{server.port}"
    server.close()


def get(url: str) -> tuple[int, dict | str]:
    status, body = http_get(url)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_other_paths_are_404_and_metrics_are_prometheus_text(served):
    health, base = served
    assert get(f"{base}/")[0] == 404
    assert get(f"{base}/health")[0] == 404
    status, text = get(f"{base}/metrics")
    assert status == 200
    assert "fraudstream_ready 0.0" in text and "fraudstream_healthy 0.0" in text
    health.beat("ingest")
    health.add_check("always", lambda: True)
    assert "fraudstream_ready 1.0" in get(f"{base}/metrics")[1]


def test_liveness_follows_the_heartbeat(served):
    health, base = served
    assert get(f"{base}/healthz") == (503, {"status": "unavailable", "reason": "no batch loop running yet"})
    health.beat("ingest")
    status, body = get(f"{base}/healthz?verbose=1")
    assert status == 200 and body["status"] == "ok" and set(body["heartbeat_age_s"]) == {"ingest"}
    health._beats["ingest"] = time.monotonic() - 45  # the loop last went round 45 s ago
    status, body = get(f"{base}/healthz")
    assert status == 503
    assert body["reason"] == "batch loop stuck for more than 30s" and body["stale"]["ingest"] >= 45
    health.beat("ingest")
    assert get(f"{base}/healthz")[0] == 200


@pytest.mark.parametrize(
    "result, reason",
    [(False, "failing"), ("model not loaded", "model not loaded")],
)
def test_readiness_names_each_failing_check(served, result, reason):
    health, base = served
    assert get(f"{base}/readyz") == (503, {"status": "unavailable", "reason": "nothing registered yet (starting)"})
    health.add_check("redis", lambda: True)
    health.add_check("model", lambda: result)
    assert get(f"{base}/readyz") == (503, {"status": "unavailable", "reason": f"model: {reason}",
                                          "failing": {"model": reason}})
    health.remove_check("model")
    assert get(f"{base}/readyz") == (200, {"status": "ok", "checks": ["redis"]})


def test_a_check_that_raises_is_not_ready_with_the_error_as_reason(served):
    health, base = served

    def ping():
        raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6390")

    health.add_check("redis", ping)
    assert get(f"{base}/readyz")[1]["failing"] == {
        "redis": "ConnectionRefusedError: Error 111 connecting to 127.0.0.1:6390"}


def test_group_membership_is_ready_once_assigned_even_with_no_partitions():
    membership = GroupMembership()
    assert membership.check().startswith("not in the consumer group yet")
    membership.on_partitions_assigned(set())  # more replicas than partitions: joined, idle
    assert membership.check() is True
    membership.on_partitions_revoked(set())
    assert membership.check().startswith("not in the consumer group yet")
