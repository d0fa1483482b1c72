"""The seed's names for the stack's parts, kept so existing imports keep working.

A layer is now a :class:`~stratacache.tier.Tier` (``Layer`` is that class) and its
configuration a :class:`~stratacache.tier.TierConfig`; the stack lives in
:mod:`stratacache.stack`.
"""

from __future__ import annotations

from typing import Literal

from stratacache.stack import CacheStack
from stratacache.tier import Tier, TierConfig, bounded

__all__ = ["CacheStack", "Layer", "LayerConfig", "LayerName", "local_timeout"]

Layer = Tier
"""The seed's name of :class:`~stratacache.tier.Tier`."""

LayerConfig = TierConfig
"""The seed's name of :class:`~stratacache.tier.TierConfig`."""

LayerName = Literal["local", "local_no_serializer", "shared"]
"""The names of the seed's three tiers (a ``CACHE_LAYERS`` stack names its own)."""


def local_timeout(timeout: float, local_default: float) -> float:
    """Return how long a local copy of an entry kept ``timeout`` seconds may live (0 = ever)."""
    return bounded(timeout, local_default)
