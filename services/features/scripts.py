"""The store's Lua, assembled: the feature table and the settings become constants at the
top of each script, so a call carries only what varies.

``batch`` runs a run of card and merchant operations in one call (exact.lua,
card.lua, merchant.lua, then the batch.lua driver); ``label`` records one fraud label.

>>> from shared.settings import Settings
>>> scripts = Scripts(Settings(max_lateness_s=3600))
>>> scripts.constants["RUNNING"], scripts.constants["DISTINCT_WINDOW"]
([3600, 86400, 604800, 2592000], 86400)
>>> len(scripts.batch.sha), scripts.batch.source.startswith("local AGGREGATIONS = {'count'")
(40, True)
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources

from services.features.definitions import AGE_CAP_S, DAY, FEATURE_SET_VERSION, MIN_MEAN_AMOUNT, by_entity
from shared.settings import Settings

SEEN_MERCHANTS_TTL_S = 180 * DAY
"""A card idle this long (wall clock) forgets its merchants: all are new to it again."""
PARTITION_SKEW_S = 7 * DAY
"""How far apart in event time input partitions may run (consumer lag, a replay, a
backlog after a fault) with merchant windows still exact for what was applied before:
merchant state, which every partition updates, keeps this much more history."""
RUNNING_AGGREGATIONS = ("count", "sum", "mean", "ratio", "zscore")
"""Card aggregations served from a window's running count, sum and sum of squares."""
TTL_SLACK_S = DAY
"""A card's TTLs are refreshed at most this often (wall clock), to the TTL plus this: a
command per key and day instead of per transaction, and a key never expires sooner than
its TTL after its last write."""
PRUNE_EVERY = 8
"""A card's history and last-use set are pruned once this many members fell out of reach:
one command per few transactions instead of one per transaction, at most this many more
members kept."""


class Script:
    """A Lua script with constants prepended, run by SHA."""

    def __init__(self, constants: dict[str, object], *filenames: str):
        header = "".join(f"local {name} = {_lua(value)}\n" for name, value in constants.items())
        files = resources.files(__package__)
        self.source = header + "\n".join(files.joinpath(name).read_text() for name in filenames)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


def _lua(value: object) -> str:
    """A Python constant as a Lua literal (floats by repr, so Lua reads the same double)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(map(_lua, value)) + "}"
    return repr(value)


class Scripts:
    def __init__(self, settings: Settings):
        card, merchant = by_entity("card"), by_entity("merchant")
        running = sorted({f.window_s for f in card if f.aggregation in RUNNING_AGGREGATIONS})
        distinct = {f.window_s for f in card if f.aggregation == "distinct_merchants"}
        squared = {f.window_s for f in card if f.aggregation == "zscore"}
        if len(distinct) > 1:
            raise ValueError("card.lua keeps one last-use set: one distinct-merchants window")
        # History older than this before a transaction serves no window of a later one.
        card_retention = float(max(f.window_s for f in card) + settings.max_lateness_s)
        merchant_retention = float(max(f.window_s for f in merchant) + settings.max_lateness_s + PARTITION_SKEW_S)
        self.constants: dict[str, object] = {
            "AGGREGATIONS": [f.aggregation for f in card],
            "WINDOWS": [f.window_s for f in card],
            "RUNNING": running,
            "SQUARED": [width in squared for width in running],
            "RUNNING_LONGEST": max(running),
            "DISTINCT_WINDOW": max(distinct | {0}),
            "MAX_LATENESS": float(settings.max_lateness_s),
            "RETENTION": card_retention,
            "HISTORY_TTL_MS": math.ceil(card_retention) * 1000,
            "MERCHANTS_TTL_MS": SEEN_MERCHANTS_TTL_S * 1000,
            "TTL_SLACK_MS": TTL_SLACK_S * 1000,
            "PRUNE_EVERY": PRUNE_EVERY,
            "MERCHANT_AGGREGATIONS": [f.aggregation for f in merchant],
            "MERCHANT_WINDOWS": [f.window_s for f in merchant],
            "MERCHANT_RETENTION": merchant_retention,
            # TTLs as Redis reads them: a number argument would be formatted per call
            "MERCHANT_TTL": str(math.ceil(merchant_retention)),
            "AGE_CAP": AGE_CAP_S,
            "MIN_MEAN_AMOUNT": MIN_MEAN_AMOUNT,
            "VECTOR_TTL": str(settings.feature_ttl_s),
            "VERSION": FEATURE_SET_VERSION,
        }
        self.batch = Script(self.constants, "exact.lua", "card.lua", "merchant.lua", "batch.lua")
        label = {k: self.constants[k] for k in ("MERCHANT_RETENTION", "MERCHANT_TTL")}
        self.label = Script(label, "label.lua")

    def __iter__(self):
        return iter((self.batch, self.label))
