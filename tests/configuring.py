"""Helpers for tests of configuration problems."""

from __future__ import annotations

from typing import Any

import pytest

from stratacache import CacheStack, ConfigurationError
from stratacache_plugins.filesystem import FileSystemCacheOptions
from stratacache_plugins.rediscache.options import RedisCacheAtomicOptions, RedisCacheOptions
from stratacache_plugins.simple import SimpleCacheOptions

NUMERIC_OPTIONS: list[tuple[Any, str]] = [
    (SimpleCacheOptions, "threshold"),
    (FileSystemCacheOptions, "threshold"),
    (FileSystemCacheOptions, "mode"),
    (RedisCacheOptions, "port"),
    (RedisCacheOptions, "db"),
    (RedisCacheOptions, "connect_timeout"),
    (RedisCacheOptions, "read_timeout"),
    (RedisCacheAtomicOptions, "lock_timeout"),
    (RedisCacheAtomicOptions, "lock_wait"),
    (RedisCacheAtomicOptions, "atomic_retries"),
]
"""Every numeric option of the first-party models: (model, field)."""


def problems_of(config: dict[str, Any] | None = None) -> list[str]:
    """The problems of configuring a fresh stack with ``config`` (None: the environment)."""
    with pytest.raises(ConfigurationError) as info:
        CacheStack().configure(config)
    return info.value.problems


def only_problem(config: dict[str, Any] | None = None) -> str:
    """The one problem of configuring a fresh stack with ``config``."""
    problems = problems_of(config)
    assert len(problems) == 1, problems
    return problems[0]
