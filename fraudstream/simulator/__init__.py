"""The traffic simulator: a seeded population of cardholders and merchants whose payments,
labelled fraud patterns and delayed labels play out in event time.

- ``population`` — cardholders with habits, merchants with a trade, genuine spending;
- ``patterns`` — the fraud patterns, their rates, and the one that appears after drift;
- ``traffic`` — :class:`~fraudstream.simulator.traffic.SimulatorConfig`, ``simulate`` (the
  merged, time-ordered stream of transactions and labels), pacing help and the CSV files
  a replay reads;
- ``publish`` — sends that stream to Kafka at a chosen rate.

The core is pure (no Kafka, no clock): the same config gives the same stream, byte for byte.
"""
