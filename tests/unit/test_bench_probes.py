"""The bench's per-service figures from its samples: (wall time, CPU seconds, events in, out)."""

from __future__ import annotations

from fraudstream.bench.probes import Watched


def watched(samples: list[tuple[float, float, float, float]]) -> Watched:
    return Watched("monitor", cpu=lambda: 0.0, samples=samples)


def test_the_busy_window_runs_from_the_last_idle_sample_to_the_first_with_everything():
    w = watched([(0.0, 1.0, 0, 0), (1.0, 1.1, 0, 0), (2.0, 1.5, 400, 2), (3.0, 2.1, 1000, 5), (4.0, 2.2, 1000, 5)])
    assert w.busy_window() == (1.0, 3.0)
    assert w.busy() == {"events_in": 1000, "events_out": 5, "in_per_s": 500.0, "out_per_s": 2.5, "busy_s": 2.0,
                        "cpu_s": 1.0, "cpu_us_per_event_in": 1000.0}


def test_a_scrape_that_timed_out_mid_run_or_last_is_no_start_and_no_count():
    # a loaded machine: the scrapes at 2.5 s and 4.0 s timed out and read 0
    w = watched([(0.0, 1.0, 0, 0), (1.0, 1.1, 0, 0), (2.0, 1.5, 400, 2), (2.5, 1.8, 0, 0), (3.0, 2.1, 1000, 5),
                 (4.0, 2.2, 0, 0)])
    assert w.busy_window() == (1.0, 3.0)
    busy = w.busy()
    assert (busy["events_in"], busy["events_out"], busy["busy_s"], busy["cpu_s"]) == (1000, 5, 2.0, 1.0)
