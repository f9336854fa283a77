"""``fraudstream lag``: how far behind each service's consumer group is, per partition.

Reads committed offsets from the broker, so it answers while a service is down or stuck
(the running services also export the same number as ``fraudstream_consumer_lag``).
"""

from __future__ import annotations

from shared.lag import PartitionLag, group_lag
from shared.settings import Settings


def table(rows: list[PartitionLag]) -> str:
    """One line per group and partition, then each group's total.

    >>> print(table([PartitionLag("fraudstream-scoring", "transactions.enriched", 0, 90, 100),
    ...              PartitionLag("fraudstream-scoring", "transactions.enriched", 1, 50, 50)]))
    group                topic                  partition  committed        end        lag
    fraudstream-scoring  transactions.enriched          0         90        100         10
    fraudstream-scoring  transactions.enriched          1         50         50          0
    fraudstream-scoring  (total)                                                        10
    """
    if not rows:
        return "no fraudstream consumer group has committed offsets yet"
    gw = max(len("group"), *(len(r.group) for r in rows))
    tw = max(len("topic"), len("(total)"), *(len(r.topic) for r in rows))
    lines = [f"{'group':<{gw}}  {'topic':<{tw}}  {'partition':>9}  {'committed':>9}  {'end':>9}  {'lag':>9}"]
    totals: dict[str, int] = {}
    for r in rows:
        lines.append(f"{r.group:<{gw}}  {r.topic:<{tw}}  {r.partition:>9}  {r.committed:>9}  {r.end:>9}  {r.lag:>9}")
        totals[r.group] = totals.get(r.group, 0) + r.lag
    lines += [f"{g:<{gw}}  {'(total)':<{tw}}  {'':>9}  {'':>9}  {'':>9}  {n:>9}" for g, n in totals.items()]
    return "\n".join(lines)


async def lag(settings: Settings) -> int:
    """Print the lag table; the exit code is 0 (the CLI wires this in as ``fraudstream lag``)."""
    print(table(await group_lag(settings)))
    return 0
