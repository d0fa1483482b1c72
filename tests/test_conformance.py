"""Every first-party backend runs the shared conformance suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stratacache import Backend
from stratacache.testing import BackendConformance, BackendFactory
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.null import NullCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer


class TestSimpleCache(BackendConformance):
    accepts_clock = True

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        return SimpleCache


class TestSimpleCacheNoSerializer(BackendConformance):
    accepts_clock = True

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        return SimpleCacheNoSerializer


class TestNullCache(BackendConformance):
    stores_values = False

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        return NullCache


@pytest.mark.parametrize("key_prefix", ["", "app_"], ids=["no-prefix", "prefix"])
class TestFileSystemCache(BackendConformance):
    accepts_clock = True

    @pytest.fixture
    def make_backend(self, tmp_path: Path, key_prefix: str) -> BackendFactory:
        return lambda **options: FileSystemCache(
            str(tmp_path / "cache"), key_prefix=key_prefix, **options
        )


class TestRedisCache(BackendConformance):
    backend_class: type[Backend] = RedisCache

    @pytest.fixture(params=["", "app_"], ids=["no-prefix", "prefix"])
    def key_prefix(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def make_backend(self, redis_url: str, key_prefix: str) -> BackendFactory:
        # Timeouts for a loaded CI machine (the defaults, 0.5 s to connect, are a service's):
        # 16 threads each opening a connection at once to a starved server timed out under
        # the parallel step. The reliability suite tests what a timeout does.
        def make(**options: Any) -> Backend:
            options = {"connect_timeout": 5, "read_timeout": 5, **options}
            return self.backend_class(url=redis_url, key_prefix=key_prefix, **options)

        return make


class TestRedisCacheNoExceptions(TestRedisCache):
    backend_class = RedisCacheNoExceptions

    @pytest.fixture
    def key_prefix(self) -> str:
        return "app_"


class TestRedisCacheAtomic(TestRedisCacheNoExceptions):
    backend_class = RedisCacheAtomic


SECRET = "conformance-secret-0123456789"


class TestSignedFileSystemCache(BackendConformance):
    """With CACHE_SECRET_KEY, FileSystemCache keeps every promise of the contract."""

    accepts_clock = True

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        return lambda **options: FileSystemCache(
            str(tmp_path / "cache"), secret_key=SECRET, **options
        )


class TestSignedRedisCache(BackendConformance):
    """With CACHE_SECRET_KEY, RedisCache keeps every promise of the contract."""

    @pytest.fixture
    def make_backend(self, redis_url: str) -> BackendFactory:
        return lambda **options: RedisCache(
            url=redis_url, key_prefix="s_", secret_key=SECRET, **options
        )
