"""The container images: the services image carries the pipeline only (shared/ and
services/) and runs ``fraudstream-service NAME``; the ``tools`` target adds fraudstream/
and the ``fraudstream`` command."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
import tomllib

from tests.deploy.files import (
    METRICS_PORT,
    PREFIX,
    ROOT,
    SERVICE_COMMAND,
    TOOLS_COMMAND,
    assert_real_settings,
    dockerfile_instructions,
    final_stage,
    lineage,
    root_image,
    stages,
)

PIPELINE_SOURCES = {"pyproject.toml", "README.md", "shared", "services"}


def _context_sources(stage_name: str) -> set[str]:
    """Everything from the build context that goes into a stage, through the stages it copies from."""
    found: set[str] = set()
    for stage in lineage(stages()[stage_name]):
        for origin, sources in stage.copies():
            found |= set(sources) if origin is None else _context_sources(origin)
    return found


def test_the_default_target_is_the_services_image_on_python_311_slim_as_non_root():
    final = final_stage()
    assert final.name == "service"
    assert root_image(final) == "python:3.11-slim"
    for stage in (final, stages()["tools"]):
        users = [u for s in lineage(stage) for u in s.args("USER")]
        assert users, f"{stage.name} never leaves root"
        assert users[0].split(":")[0] not in ("root", "0"), (stage.name, users[0])  # nearest stage's USER wins


def test_the_services_image_carries_the_pipeline_only_and_runs_fraudstream_service():
    assert _context_sources("service") == PIPELINE_SOURCES
    assert final_stage().entrypoint == [SERVICE_COMMAND]
    # Without a service name it prints the usage (the names) instead of running python.
    assert final_stage().args("CMD") == ['["--help"]']


def test_the_tools_image_adds_the_cli_and_runs_fraudstream():
    tools = stages()["tools"]
    assert _context_sources("tools") == PIPELINE_SOURCES | {"fraudstream"}
    assert tools.entrypoint == [TOOLS_COMMAND]
    assert any("[cli]" in run for run in tools.args("RUN")), "the tools image needs the cli extra (typer)"
    assert tools.args("HEALTHCHECK") == ["NONE"], "the tools serve no metrics"


def test_the_console_scripts_the_images_run_exist():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {TOOLS_COMMAND: "fraudstream.cli:main", SERVICE_COMMAND: "shared.launcher:cli"}
    # The services image has no fraudstream/: its script must start with nothing but the pipeline.
    probe = ("import sys; sys.modules['fraudstream'] = None\n"  # any import of it now fails
             "from shared.launcher import cli; sys.argv = ['fraudstream-service', '--help']; cli()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ingest" in done.stderr, done.stderr


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_the_pipeline_never_imports_the_tools():
    """What the services image leaves out must not be needed by what it carries."""
    offenders = sorted(str(p.relative_to(ROOT)) for d in ("shared", "services") for p in (ROOT / d).rglob("*.py")
                       if any(m == "fraudstream" or m.startswith("fraudstream.") for m in _imports(p)))
    assert not offenders, offenders


def test_images_install_no_dev_or_local_extras_and_default_the_metrics_port():
    runs = " ".join(a for i, a in dockerfile_instructions() if i == "RUN")
    assert "pip install" in runs and "pip wheel" in runs
    assert not re.search(r"\[[^\]]*(dev|local)[^\]]*\]", runs), "dev/local extras do not belong in an image"
    envs = " ".join(a for s in lineage(final_stage()) for a in s.args("ENV"))
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
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    sources = _context_sources("service") | _context_sources("tools")
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    for kept in ("shared/settings.py", "services/__init__.py", "fraudstream/cli/__init__.py", "pyproject.toml"):
        assert not _dockerignored(kept, patterns), kept
    for dropped in (".venv/bin/python", ".git/config", "shared/__pycache__/settings.cpython-311.pyc",
                    "tests/conftest.py", ".github/workflows/ci.yml", "scripts/bootstrap"):
        assert _dockerignored(dropped, patterns), dropped
