"""Backend discovery: entry points, dotted paths, lazy loading and clear errors."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from stratacache import (
    BackendNotFound,
    CacheStack,
    ConfigurationError,
    InvalidBackend,
    installed_backends,
    load_backend,
    registry,
)
from stratacache_plugins.simple import SimpleCache

from .conftest import run_python


def test_first_party_backends_are_entry_points() -> None:
    found = {info.name: info for info in installed_backends()}
    assert {"SimpleCache", "SimpleCacheNoSerializer", "NullCache", "FileSystemCache"} <= set(found)
    assert found["SimpleCache"].target == "stratacache_plugins.simple:SimpleCache"
    assert found["SimpleCache"].distribution == "stratacache"


@pytest.mark.parametrize(
    "name",
    [
        "SimpleCache",
        "stratacache_plugins.simple.SimpleCache",
        "stratacache_plugins.simple:SimpleCache",
    ],
)
def test_load_by_name_or_dotted_path(name: str) -> None:
    assert load_backend(name) is SimpleCache


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("shared.caching.backends.rediscache.RedisCacheNoExceptions", "RedisCacheNoExceptions"),
        ("shared.caching.backends.simple:SimpleCache", "SimpleCache"),
        ("shared.caching.backends.filesystem.FileSystemCache", "FileSystemCache"),
        ("flask_caching.backends.simplecache.SimpleCache", "SimpleCache"),
        ("flask_caching.backends.NullCache", "NullCache"),
        ("cachelib.SimpleCache", "SimpleCache"),
        ("cachelib.simple.SimpleCache", "SimpleCache"),
        ("cachelib.file.FileSystemCache", "FileSystemCache"),
        ("cachelib.redis.RedisCache", "RedisCache"),
        ("cachelib.base.NullCache", "NullCache"),
    ],
)
def test_seed_and_flask_caching_paths_resolve_to_installed_backends(path: str, name: str) -> None:
    assert registry.resolve_alias(path) == name
    assert load_backend(path) is load_backend(name)


@pytest.mark.subprocess
def test_seed_path_imports_neither_the_seed_nor_flask_caching(tmp_path: Path) -> None:
    code = """
import json, sys
from stratacache import load_backend
load_backend("shared.caching.backends.simple:SimpleCache")
load_backend("flask_caching.backends.simplecache.SimpleCache")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("shared", "flask_caching")))))
"""
    assert json.loads(run_python(code, cwd=tmp_path).stdout) == []


def test_settings_select_a_backend_by_seed_path() -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "shared.caching.backends.simple:SimpleCache",
            "LOCALCACHE_TYPE": "shared.caching.backends.simple.SimpleCache",
        }
    )
    assert type(stack.shared_cache.cache) is SimpleCache
    assert type(stack.local_cache.cache) is SimpleCache
    with pytest.raises(ConfigurationError, match="no backend 'MemcachedCache' is installed"):
        CacheStack().configure({"CACHE_TYPE": "shared.caching.backends.memcache.MemcachedCache"})


@pytest.mark.parametrize(
    "path",
    [
        "SimpleCache",
        "stratacache_plugins.simple.SimpleCache",
        "shared.caching.backendsX.SimpleCache",
        "shared.caching.SimpleCache",
        "flask_caching.contrib.uwsgicache.UWSGICache",
    ],
)
def test_other_names_are_no_alias(path: str) -> None:
    assert registry.resolve_alias(path) == path


def test_seed_path_of_a_backend_not_installed_names_path_installed_and_closest() -> None:
    path = "shared.caching.backends.rediscache.RedisCacheNoException"
    with pytest.raises(BackendNotFound) as info:
        load_backend(path)
    assert info.value.name == path
    assert info.value.suggestion == "RedisCacheNoExceptions"
    assert "SimpleCache" in info.value.installed
    message = str(info.value)
    assert f"unknown cache backend {path!r}" in message
    assert "a backend path of the seed package shared.caching" in message
    assert "no backend 'RedisCacheNoException' is installed" in message
    assert "Did you mean 'RedisCacheNoExceptions'?" in message
    assert "Installed backends: FileSystemCache, NullCache," in message


def test_flask_caching_path_of_a_backend_not_installed_is_not_imported() -> None:
    with pytest.raises(BackendNotFound, match="a backend path of Flask-Caching") as info:
        load_backend("flask_caching.backends.memcache.MemcachedCache")
    assert info.value.__cause__ is None  # refused by name, without importing Flask-Caching


def test_unknown_name_lists_installed_and_closest() -> None:
    with pytest.raises(BackendNotFound) as info:
        load_backend("NulCache")
    assert info.value.suggestion == "NullCache"
    assert "SimpleCache" in info.value.installed
    assert "Did you mean 'NullCache'?" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_nothing_close_gives_no_suggestion() -> None:
    with pytest.raises(BackendNotFound) as info:
        load_backend("Zookeeper")
    assert info.value.suggestion is None
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "lacks"),
    [
        ("collections.OrderedDict", "it lacks lookup, set_tracked, clear_tracked, from_options"),
        ("os.path:join", "it is not a class"),
    ],
)
def test_not_a_backend_says_what_it_lacks(path: str, lacks: str) -> None:
    with pytest.raises(InvalidBackend, match=lacks):
        load_backend(path)


def test_stale_entry_point_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    from importlib.metadata import EntryPoint

    broken = EntryPoint("Broken", "no_such_package.backend:Broken", registry.BACKENDS_GROUP)
    missing_driver = EntryPoint("NeedsDriver", "tests.needs_driver:Cache", registry.BACKENDS_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken, missing_driver])
    with pytest.raises(BackendNotFound, match="the entry point is stale"):
        load_backend("Broken")
    with pytest.raises(BackendNotFound, match="install the package that provides 'no_such_driver'"):
        load_backend("NeedsDriver")


@pytest.mark.subprocess
def test_selecting_simplecache_imports_no_other_backend(tmp_path: Path) -> None:
    code = """
import json, sys
import stratacache
before = sorted(m for m in sys.modules if m.startswith("stratacache_plugins"))
stratacache.configure({"CACHE_TYPE": "SimpleCache", "LOCALCACHE_TYPE": "SimpleCache"})
after = sorted(m for m in sys.modules if m.startswith("stratacache_plugins"))
print(json.dumps({
    "before": before,
    "after": after,
    "redis": "redis" in sys.modules,
    "prometheus_client": "prometheus_client" in sys.modules,
    "opentelemetry": any(m.startswith("opentelemetry") for m in sys.modules),
}))
"""
    out = json.loads(run_python(code, cwd=tmp_path).stdout)
    assert out["before"] == []
    # The hook plugins of the stratacache.plugins group installed load at configure (the
    # Prometheus exporter and the OpenTelemetry plugin, which import their clients only when
    # enabled); of the backends, only the one selected (and the base of the backends' options
    # models, no backend).
    installed = {ep.value for ep in entry_points(group="stratacache.plugins")}
    assert out["after"] == sorted(
        {
            "stratacache_plugins",
            "stratacache_plugins._counters",
            "stratacache_plugins._options",
            "stratacache_plugins.simple",
            "stratacache_plugins.simplecopy",  # part of SimpleCache (how it returns values)
            "stratacache_plugins.simpletags",  # part of SimpleCache (its tag index)
            *(installed & {"stratacache_plugins.prometheus", "stratacache_plugins.otel"}),
        }
    )
    assert out["redis"] is False
    assert out["prometheus_client"] is False
    assert out["opentelemetry"] is False
