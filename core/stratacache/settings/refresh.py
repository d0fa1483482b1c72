"""The keys of background work: ``CACHE_REFRESH_WORKERS`` and ``CACHE_RECOVERY_MAX``.

The refresh pool is :mod:`stratacache.refresh`; the replay of missed invalidations,
:mod:`stratacache.recovery`.

Declared here, as the other core keys are in :mod:`stratacache.settings.model`, so that the
model stays one screenful of keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

__all__ = ["RECOVERY_MAX", "REFRESH_WORKERS"]

REFRESH_WORKERS: Any = Field(
    4,
    alias="CACHE_REFRESH_WORKERS",
    json_schema_extra={"accepts": "a whole number from 1 to 256"},
    ge=1,
    le=256,
    examples=["8"],
    description="Threads that run background refreshes and timed computations"
    " (refresh_after, stale_after, soft_timeout, hard_timeout); at most this many"
    " refreshes run at once, and a stale read past that is served without one.",
)
"""The field of ``CacheSettings.cache_refresh_workers``."""

RECOVERY_MAX: Any = Field(
    10_000,
    alias="CACHE_RECOVERY_MAX",
    json_schema_extra={"accepts": "a whole number from 0 to 10000000"},
    ge=0,
    le=10_000_000,
    examples=["0"],
    description="Most invalidations (deletes, clear_cache, tags, clears) a degrading tier"
    " (RedisCacheNoExceptions) keeps while its store is unreachable, to replay them once it"
    " is back; one more turns them into one clear of the tier. 0 turns the replay off.",
)
"""The field of ``CacheSettings.cache_recovery_max``."""
