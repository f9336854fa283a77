"""The store's Lua, assembled: the feature table and the settings become constants at the
top of each script, so a call carries only what varies.

``batch`` runs a whole batch of card and merchant operations in one call (exact.lua,
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

from shared.settings import Settings
from services.features.definitions import AGE_CAP_S, DAY, FEATURE_SET_VERSION, MIN_MEAN_AMOUNT, by_entity

SEEN_MERCHANTS_TTL_S = 180 * DAY
"""A card idle this long (wall clock) forgets its merchants: all are new to it again."""
PARTITION_SKEW_S = 7 * DAY
"""How far apart in event time input partitions may run (consumer lag, a replay, a
backlog after a fault) with merchant windows still exact for what was applied before:
merchant state, which every partition updates, keeps this much more history."""
RUNNING_AGGREGATIONS = ("count", "sum", "mean", "ratio", "zscore")
"""Card aggregations served from a window's running count, sum and sum of squares."""


class Script:
    """A Lua script with constants prepended, run by SHA."""

    def __init__(self, constants: dict[str, object], *filenames: str):
        header = "".join(f"local {name} = {_lua(value)}\n" for name, value in constants.items())
        files = resources.files(__package__)
        self.source = header + "\n".join(files.joinpath(name).read_text() for name in filenames)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


def _lua(value: object) -> str:
    """A Python constant as a Lua literal (floats by repr, so Lua reads the same double)."""
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
        if len(distinct) > 1:
            raise ValueError("card.lua keeps one last-use set: one distinct-merchants window")
        # History older than this before a transaction serves no window of a later one.
        card_retention = float(max(f.window_s for f in card) + settings.max_lateness_s)
        merchant_retention = float(max(f.window_s for f in merchant) + settings.max_lateness_s + PARTITION_SKEW_S)
        self.constants: dict[str, object] = {
            "AGGREGATIONS": [f.aggregation for f in card],
            "WINDOWS": [f.window_s for f in card],
            "RUNNING": running,
            "RUNNING_LONGEST": max(running),
            "DISTINCT_WINDOW": max(distinct | {0}),
            "MAX_LATENESS": float(settings.max_lateness_s),
            "RETENTION": card_retention,
            "HISTORY_TTL": math.ceil(card_retention),
            "MERCHANTS_TTL": SEEN_MERCHANTS_TTL_S,
            "MERCHANT_AGGREGATIONS": [f.aggregation for f in merchant],
            "MERCHANT_WINDOWS": [f.window_s for f in merchant],
            "MERCHANT_RETENTION": merchant_retention,
            "MERCHANT_TTL": math.ceil(merchant_retention),
            "AGE_CAP": AGE_CAP_S,
            "MIN_MEAN_AMOUNT": MIN_MEAN_AMOUNT,
            "VECTOR_TTL": settings.feature_ttl_s,
            "VERSION": FEATURE_SET_VERSION,
        }
        self.batch = Script(self.constants, "exact.lua", "card.lua", "merchant.lua", "batch.lua")
        label = {k: self.constants[k] for k in ("MERCHANT_RETENTION", "MERCHANT_TTL")}
        self.label = Script(label, "label.lua")

    def __iter__(self):
        return iter((self.batch, self.label))
