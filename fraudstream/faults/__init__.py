"""What the fault-injection suite (``tests/faults``) and ``fraudstream soak`` share.

- ``processes`` — every service as its own OS process, and a Redis of the run's own on its
  append-only file: start, kill -9, SIGSTOP/SIGCONT, SIGTERM, scale, RSS;
- ``load`` — steady simulated traffic (labels a couple of wall seconds after their
  transaction), a poison burst and a seeded fuzzer for the raw topics;
- ``accounting`` — read every output back and say what was scored, lost, learned,
  dead-lettered and computed differently from the reference features.
"""
