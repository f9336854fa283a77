"""The pure parts of the fault tools: the soak's verdicts (memory, and scores kept coming),
and the poison burst's expected refusals against ingest's own validation (the integration
suite then checks them live)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from fraudstream.faults.fuzz import generate
from fraudstream.faults.load import Workload
from fraudstream.faults.poison import burst
from fraudstream.faults.soak import Curve, SoakResult
from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction
from shared.events import utcnow
from shared.settings import Settings
from shared.topics import TRANSACTIONS_RAW


def test_a_series_is_judged_on_the_slope_of_its_second_half_only():
    filling = [(t, min(t, 300) / 10) for t in range(0, 601, 60)]  # grows to 30 MiB by 5 min, then flat
    leaking = [(t, 50 + t / 60) for t in range(0, 601, 60)]  # one MiB a minute, all along
    curves = {"fills": Curve("fills", filling), "leaks": Curve("leaks", leaking),
              "broker": Curve("broker", leaking, judged=False)}
    result = SoakResult(600, curves, Counter(), 0, max_growth=50.0, exits=[])
    assert curves["fills"].growth_per_hour() == 0.0
    assert round(curves["leaks"].growth_per_hour(), 6) == 60.0
    assert result.growing == ["leaks"]


def test_a_run_in_which_scores_stop_for_more_than_two_minutes_has_stalled():
    # scores start at 10 s, stand still from 15 s to 150 s (the soak's ingest, 2026-12-04), then go on
    paused = [(0, 0), (5, 0), (10, 3), (15, 9), (20, 9), (150, 9), (155, 20), (160, 30)]
    result = SoakResult(160, {}, Counter(), 0, max_growth=50.0, exits=[], scored=paused)
    assert (result.longest_pause_s, result.stalled) == (135, True)
    slow_start = [(0, 0), (100, 0), (200, 5), (205, 10), (300, 10), (305, 11)]  # no score in the first 200 s
    result = SoakResult(305, {}, Counter(), 0, max_growth=50.0, exits=[], scored=slow_start)
    assert (result.longest_pause_s, result.stalled) == (95, False)


def test_every_poison_that_ingest_refuses_is_refused_with_the_expected_reason():
    workload = Workload.build(300, 200, seed=3)
    limits, now = Limits.from_settings(Settings()), utcnow()
    refused_by_ingest = [p for p in burst(workload) if p.reason not in (None, "duplicate", "unknown or expired tx_id")]
    assert len(refused_by_ingest) == 32
    for poison in refused_by_ingest:
        parse = parse_transaction if poison.record.topic == TRANSACTIONS_RAW else parse_label
        try:
            parse(poison.record.value, limits, now)
        except Rejected as exc:
            assert str(exc).startswith(poison.reason), (poison.kind, str(exc))
        else:
            raise AssertionError(f"{poison.kind} was accepted")


def test_the_fuzzer_is_seeded_and_mixes_valid_and_hostile_input():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    inputs = generate(2000, seed=4, now=now)
    assert inputs == generate(2000, seed=4, now=now)
    limits = Limits.from_settings(Settings())
    outcomes = Counter()
    for record in inputs:
        parse = parse_transaction if record.topic == TRANSACTIONS_RAW else parse_label
        try:
            parse(record.value, limits, now)
            outcomes["valid"] += 1
        except Rejected as exc:
            outcomes[str(exc).split(":", 1)[0]] += 1
    assert set(outcomes) == {"valid", "malformed", "out of range"}
    assert 0.3 < outcomes["valid"] / len(inputs) < 0.6
