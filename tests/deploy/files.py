"""The deployment files, loaded once, and what they must agree on with the code.

No Docker engine or cluster runs here, so the files are checked, not run: against their
schemas and linters (``test_validators``), and against what fraudstream itself needs
(every other module here).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
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
WORKFLOWS = ROOT / ".github" / "workflows"

SERVICES = ("ingest", "features", "scoring", "learner", "monitor")
SINGLETONS = ("learner", "monitor")
METRICS_PORT = 9100
PREFIX = "FRAUDSTREAM_"
SERVICE_COMMAND = "fraudstream-service"
TOOLS_COMMAND = "fraudstream"
# The settings the brief requires in both compose and Kubernetes.
SHARED_ENV = {
    f"{PREFIX}{n.upper()}"
    for n in ("kafka_bootstrap", "redis_url", "topic_prefix", "partitions", "metrics_port", "artifact_store",
              "log_level", "session_timeout_ms")
}
# Kubernetes versions the manifests must validate against: an old supported one and the
# newest the validator knows.
K8S_VERSIONS = ("1.29.0", "latest")


# --- compose and Kubernetes ----------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_docs() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == kind}


def container_argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def deployments() -> dict[str, dict]:
    """Service name → its Deployment, found by the command it runs (``fraudstream-service NAME``)."""
    out = {}
    for dep in k8s_objects("Deployment").values():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        argv = container_argv(container)
        assert len(argv) == 2 and argv[0] == SERVICE_COMMAND, f"{dep['metadata']['name']} runs {argv}"
        out[argv[1]] = dep
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


def compose_argv(service: dict) -> list[str]:
    """What a compose service runs: its entrypoint (else its image target's) and command."""
    entry = service.get("entrypoint") or stages()[service["build"].get("target", final_stage().name)].entrypoint
    return [*entry, *service.get("command", [])]


# --- the Dockerfile ------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    """The FROM image, or the name of an earlier stage."""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]

    @property
    def entrypoint(self) -> list[str]:
        (entry,) = self.args("ENTRYPOINT")
        return exec_form(entry)

    def copies(self) -> list[tuple[str | None, list[str]]]:
        """(the stage copied from, or None for the build context; the sources) per COPY."""
        out = []
        for args in self.args("COPY") + self.args("ADD"):
            words = exec_form(args)
            origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            out.append((origin, [w for w in words if not w.startswith("--")][:-1]))
        return out


@cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not buf and not stripped):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        full, buf = (buf + stripped).strip(), ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@cache
def stages() -> dict[str, Stage]:
    args = dict(a.split("=", 1) for i, a in dockerfile_instructions() if i == "ARG" and "=" in a)
    found: dict[str, Stage] = {}
    current = None
    for instruction, rest in dockerfile_instructions():
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            current = found[name] = Stage(name, base)
        elif current is not None:
            current.instructions.append((instruction, rest))
    return found


def final_stage() -> Stage:
    """What ``docker build`` builds without ``--target``."""
    return list(stages().values())[-1]


def root_image(stage: Stage) -> str:
    while stage.base in stages():
        stage = stages()[stage.base]
    return stage.base


def lineage(stage: Stage) -> list[Stage]:
    """The stage and every stage it is built FROM, nearest first."""
    out = [stage]
    while out[-1].base in stages():
        out.append(stages()[out[-1].base])
    return out


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


# --- settings ------------------------------------------------------------------------


def settings_from(env: dict[str, str], monkeypatch) -> Settings:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(PREFIX + name.upper(), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def assert_real_settings(names, where: str) -> None:
    fields = set(Settings.model_fields)
    unknown = sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX):].lower() not in fields)
    assert not unknown, f"{where} sets variables that are no Settings field: {unknown}"
