"""The command line without a broker: groups, --version, and one-line errors with the fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.metadata import version

import pytest
from pydantic import ValidationError

from fraudstream.cli import app
from fraudstream.cli.errors import explain
from shared.kafka import TopicsMissing
from shared.settings import Settings
from tests.cli.helpers import fraudstream

PANELS = {
    "Run": {"up", "service", "stack", "simulate"},
    "Operate": {"models", "retrain", "tail", "topics", "lag", "deadletter"},
    "Data and analysis": {"replay", "evaluate", "report"},
    "Develop": {"bench", "schemas", "soak"},
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def _clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")} | extra


def test_every_command_keeps_its_name_and_sits_in_its_audiences_panel():
    commands = {c.name or c.callback.__name__: c.rich_help_panel for c in app.registered_commands}
    groups = {g.name: g.rich_help_panel for g in app.registered_groups}
    assert commands | groups == {name: panel for panel, names in PANELS.items() for name in names}


def test_help_shows_the_panels():
    ran = fraudstream("--help", env=_clean_env(COLUMNS="120"))
    assert ran.code == 0
    for panel in PANELS:
        assert f"─ {panel} " in ran.out, panel


def test_version():
    ran = fraudstream("--version")
    assert (ran.code, ran.out) == (0, f"fraudstream {version('fraudstream')}\n")


def test_a_bad_setting_is_one_line_naming_the_variable():
    ran = fraudstream("topics", env=_clean_env(FRAUDSTREAM_PARTITIONS="abc"))
    assert ran.code == 1
    assert ran.err == ("fraudstream: FRAUDSTREAM_PARTITIONS='abc': Input should be a valid integer, unable to parse "
                       "string as an integer; fix it or unset it\n")


def test_no_broker_is_one_line_with_the_fix():
    address = f"127.0.0.1:{_closed_port()}"
    ran = fraudstream("tail", "scores", env=_clean_env(FRAUDSTREAM_KAFKA_BOOTSTRAP=address))
    assert ran.code == 1
    assert ran.err == (f"fraudstream: no Kafka broker answers at {address} (FRAUDSTREAM_KAFKA_BOOTSTRAP); start one "
                       "with `fraudstream stack` and export what it prints, or point FRAUDSTREAM_KAFKA_BOOTSTRAP "
                       "at yours\n")


def test_a_real_bug_keeps_its_traceback():
    assert explain(ZeroDivisionError("division by zero")) is None


def test_the_cause_is_found_through_chains_and_groups():
    try:
        try:
            Settings(log_format="yaml")
        except ValidationError as exc:
            raise RuntimeError("while starting") from exc
    except RuntimeError as exc:
        grouped = ExceptionGroup("tasks", [ValueError("other"), exc])
    assert explain(grouped) == ("FRAUDSTREAM_LOG_FORMAT='yaml': String should match pattern '^(text|json)$'; "
                                "fix it or unset it")
    assert explain(TopicsMissing("topics missing on b:9092: scores")) == (
        "topics missing on b:9092: scores; create them with `fraudstream topics` (or check FRAUDSTREAM_TOPIC_PREFIX)")


def test_json_log_format_is_one_object_per_line():
    script = ("import logging; from shared.lifecycle import configure_logging; from shared.settings import Settings\n"
              "configure_logging(Settings())\n"
              "log = logging.getLogger('services.scoring')\n"
              "log.info('scored %d', 500)\n"
              "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('batch failed')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=_clean_env(FRAUDSTREAM_LOG_FORMAT="json"))
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    first, second = map(json.loads, lines)
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO", "logger": "services.scoring", "message": "scored 500"}
    assert second["message"] == "batch failed" and second["exc"].endswith("ZeroDivisionError: division by zero")
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-01-01T00:00:00.000Z")


@pytest.mark.parametrize("args", [["deadletter", "redrive"], ["deadletter", "redrive", "--offset", "7"]])
def test_redrive_refuses_a_vague_selection_before_touching_the_broker(args):
    ran = fraudstream(*args, env=_clean_env(FRAUDSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{_closed_port()}"))
    assert ran.code == 2
    assert "PARTITION:OFFSET" in ran.err or "choose the letters" in ran.err
