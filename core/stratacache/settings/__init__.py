"""The settings: the core model (pure: it imports no plugin), its sources and its problems.

Keys owned by backends and plugins are kept as given and validated in the assembly step
(:mod:`stratacache.assembly`).
"""

from stratacache.masking import MASK, mask_url
from stratacache.settings.model import CacheSettings, MappingSettings
from stratacache.settings.sources import KEY_PREFIXES, Source
from stratacache.settings.tierspec import TierSpec

__all__ = [
    "KEY_PREFIXES",
    "MASK",
    "CacheSettings",
    "MappingSettings",
    "Source",
    "TierSpec",
    "mask_url",
]
