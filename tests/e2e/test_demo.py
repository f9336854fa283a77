"""``fraudstream up --duration 20`` as a user runs it: a subprocess with its own local stack.

What a new user was promised: alerts with reasons within seconds, dead letters summarised
by kind (the first of each kind shown once), the status line following the champion on
``model.versions``, no drift while the monitor warms up, metrics URLs per service, and an
exit within a few seconds of the duration (counted from when traffic starts).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from services import SERVICES

pytestmark = pytest.mark.e2e

DURATION_S = 20


def test_the_demo_shows_alerts_dead_letter_summaries_and_the_champion_then_stops_on_time(tmp_path):
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "fraudstream.cli", "up", "--duration", str(DURATION_S)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, traffic_at = [], None
    assert proc.stdout is not None
    for text in proc.stdout:  # the demo ends by itself: the loop ends with its output
        lines.append(text.rstrip("\n"))
        if traffic_at is None and "traffic starts" in text:
            traffic_at = time.monotonic()
        assert time.monotonic() - began < 240, "the demo did not stop\n" + "\n".join(lines[-40:])
    proc.wait(timeout=30)
    ended = time.monotonic()
    out = "\n".join(lines)
    assert proc.returncode == 0, out[-4000:]
    assert traffic_at is not None, out[-4000:]
    assert ended - traffic_at < DURATION_S + 6, f"{ended - traffic_at:.1f}s of traffic and shutdown\n{out[-2000:]}"

    assert len(re.findall(r"/metrics  /healthz  /readyz", out)) == len(SERVICES)  # one port per service
    assert re.search(r"the live page: http://127\.0\.0\.1:\d+/dashboard/", out)
    alerts = [line for line in lines if "  ALERT  " in line]
    assert alerts, out[-4000:]
    why = [line for line in lines if line.strip().startswith("why:")]
    assert why and "risk" in why[0]
    summaries = [line for line in lines if line.strip().startswith("dead letters:")]
    assert summaries, out[-4000:]
    examples = [line for line in lines if "first of its kind" in line]
    kinds = [re.search(r"first of its kind: (.*?);", line).group(1) for line in examples]
    assert kinds and len(kinds) == len(set(kinds))  # each kind shown once
    assert sum("  DEAD  " in line for line in lines) == len(kinds)  # the rest are counted, not printed
    statuses = [line for line in lines if re.match(r"\[\s*\d+s\] sent", line)]
    champions = [re.search(r"champion (v\d+)", s).group(1) for s in statuses]
    assert champions[0] == "v1" and champions[-1] != "v1", champions  # follows the periodic versions
    assert not [line for line in lines if "  DRIFT  " in line or "RETRAIN by monitor" in line], out[-4000:]
