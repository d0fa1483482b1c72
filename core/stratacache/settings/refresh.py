"""The key of the background refresh pool: ``CACHE_REFRESH_WORKERS`` (see ``stratacache.refresh``).

Declared here, as the other core keys are in :mod:`stratacache.settings.model`, so that the
model stays one screenful of keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

__all__ = ["REFRESH_WORKERS"]

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
