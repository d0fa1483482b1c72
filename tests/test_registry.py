"""Backend discovery: entry points, dotted paths, lazy loading and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratacache import BackendNotFound, InvalidBackend, installed_backends, load_backend, registry
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
}))
"""
    out = json.loads(run_python(code, cwd=tmp_path).stdout)
    assert out["before"] == []
    # The hook plugins of the stratacache.plugins group load at configure (the Prometheus
    # exporter, which imports its client only when CACHE_PROMETHEUS is on); of the backends,
    # only the one selected (and the base of the backends' options models, no backend).
    assert out["after"] == [
        "stratacache_plugins",
        "stratacache_plugins._options",
        "stratacache_plugins.prometheus",
        "stratacache_plugins.simple",
    ]
    assert out["redis"] is False
    assert out["prometheus_client"] is False
