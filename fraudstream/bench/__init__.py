"""``fraudstream bench [STAGE]``: throughput and latency of the services on a real stack.

Two phases per stage, with the services as separate processes (as deployed):

* **throughput**: a backlog of N simulated transactions is loaded onto
  ``transactions.raw`` first, then the services start, the first stage last, once the
  others have joined their groups, and drain it; the rate is output events over the time
  from the first to the last output (group joins excluded);
* **latency**: the services still running, the stream goes on at a fixed offered load
  (by default half the throughput just measured); latency is the time from the producer's
  timestamp on ``transactions.raw`` to the arrival of the stage's output at a consumer.

``full`` (the default) runs every service with labels flowing, reads each service's
Prometheus counters and CPU (and the broker's and Redis's) while it drains, splits the
latency by hop from the stamps in each score, then measures the two baselines of
``baselines.py`` on the same backlog and states the pipeline's rate against each.
``docs/benchmarks.md`` has the method, the figures and what they mean.

Modules: ``workload`` (what is sent), ``outputs`` (what comes back), ``probes`` (CPU and
counters), ``startup`` (services started downstream first, group joins), ``figures``
(results and their printing), ``runner`` (the runs).
"""

from fraudstream.bench.figures import Figures, FullFigures
from fraudstream.bench.runner import DEFAULT_EVENTS, STAGES, run_bench
from fraudstream.bench.workload import enriched_stream, raw_stream, send_all, take

__all__ = ["DEFAULT_EVENTS", "STAGES", "Figures", "FullFigures", "enriched_stream", "raw_stream", "run_bench",
           "send_all", "take"]
