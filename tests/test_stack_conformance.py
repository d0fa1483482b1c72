"""The stack conformance suite, run by the seed's stacks and by CACHE_LAYERS stacks.

Each stack's deepest tier is shared (a directory, the suite's redis-server), so two stacks
built by one factory are two instances of one service.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stratacache import CacheStack, TierSpecOf
from stratacache.testing import StackConformance, StackFactory
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache


def configured(config: dict[str, object]) -> StackFactory:
    def make() -> CacheStack:
        stack = CacheStack()
        stack.configure(config)
        return stack

    return make


class TestSeedStackOnFiles(StackConformance):
    """local SimpleCache > shared FileSystemCache, from the seed's keys."""

    @pytest.fixture
    def make_stack(self, tmp_path: Path) -> StackFactory:
        return configured({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")})


class TestSeedStackOnRedis(StackConformance):
    """local SimpleCache > shared RedisCache, from the seed's keys."""

    @pytest.fixture
    def make_stack(self, redis_url: str) -> StackFactory:
        return configured({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url})


class TestThreeTierStack(StackConformance):
    """memory > disk > redis, from CACHE_LAYERS, with a cap on the memory tier."""

    @pytest.fixture
    def make_stack(self, tmp_path: Path, redis_url: str) -> StackFactory:
        return configured(
            {
                "CACHE_LAYERS": [
                    {"type": "SimpleCache", "name": "memory", "timeout": 20},
                    {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path / "d")},
                    {"type": "RedisCache", "name": "redis", "url": redis_url},
                ]
            }
        )


class TestStackBuiltInCode(StackConformance):
    """SimpleCache > RedisCacheNoExceptions on a ready URL, with CacheStack.from_tiers."""

    @pytest.fixture
    def make_stack(self, redis_url: str) -> StackFactory:
        def make() -> CacheStack:
            return CacheStack.from_tiers(
                [SimpleCache(), TierSpecOf(RedisCacheNoExceptions(url=redis_url), name="redis")]
            )

        return make


class TestSimpleOverFiles(StackConformance):
    """Two tiers from code: SimpleCache capped at 10 s over a directory."""

    @pytest.fixture
    def make_stack(self, tmp_path: Path) -> StackFactory:
        def make() -> CacheStack:
            return CacheStack.from_tiers(
                [TierSpecOf(SimpleCache(), name="memory", timeout=10), FileSystemCache(tmp_path)]
            )

        return make
