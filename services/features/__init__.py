"""features: valid transactions in, point-in-time feature vectors out.

``definitions`` is the feature table and its version, ``store`` keeps the state in Redis
(one round trip per batch, in short script calls; ``scripts`` assembles the Lua),
``reference`` computes the same features with plain lists,
``service`` is the Kafka loop and ``bench`` measures the store.

Other services read stored vectors only through :class:`FeatureReader` (the learner's
label join): the store's windows and scripts stay this package's own business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.redis import AsyncRedis
    from shared.settings import Settings


class StoredFeatures(Protocol):
    # read-only members, so the store's frozen records match
    @property
    def ts(self) -> float:
        """The transaction's event time, epoch seconds."""

    @property
    def features(self) -> dict[str, float]:
        """The vector the transaction was scored with."""


class FeatureReader(Protocol):
    async def lookup(self, keys: list[tuple[str, str]]) -> Mapping[str, StoredFeatures | None]:
        """What each (card_id, tx_id) was scored with, by tx_id; None if unknown or expired."""


def feature_reader(redis: AsyncRedis, settings: Settings) -> FeatureReader:
    """The read side of the feature store, for a service that joins to stored vectors."""
    from services.features.store import FeatureStore  # the store's Lua and windows load only here

    return FeatureStore(redis, settings)


__all__ = ["FeatureReader", "StoredFeatures", "feature_reader"]
