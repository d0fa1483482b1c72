"""The Prometheus exporter plugin, with prometheus_client's real registries and exposition."""

from __future__ import annotations

import gc
import textwrap
import tomllib
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stratacache import CacheStack, cached_for, plugin_manager
from stratacache_plugins import prometheus
from stratacache_plugins.prometheus import StratacacheCollector

from .conftest import ROOT, clean_env, declaring_site, root_pythonpath, run_python


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry's exposition text, by name and sorted labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def exporter(fresh_plugins: None) -> None:
    """The plugin registered as its entry point registers it (under the same name)."""
    plugin_manager().register(prometheus, name="prometheus")


def test_collector_exports_layers_and_functions(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def rates(currency: str) -> str:
        return currency

    rates("EUR")
    rates("EUR")
    stack.local_cache.cache.clear()
    rates("EUR")
    registry = CollectorRegistry()
    registry.register(StratacacheCollector(stack))
    found = samples(registry)
    name = f"{__name__}.{rates.__qualname__}"

    assert found["stratacache_hits_total", (("layer", "local"),)] == 1
    assert found["stratacache_hits_total", (("layer", "shared"),)] == 1
    assert found["stratacache_misses_total", (("layer", "local"),)] == 2
    assert found["stratacache_sets_total", (("layer", "local"),)] == 2
    assert found["stratacache_errors_total", (("layer", "shared"),)] == 0
    assert found["stratacache_deserialization_failures_total", (("layer", "local"),)] == 0
    assert found["stratacache_lock_waits_total", (("layer", "local_no_serializer"),)] == 0
    assert found["stratacache_function_hits_total", (("function", name), ("layer", "local"))] == 1
    assert found["stratacache_function_hits_total", (("function", name), ("layer", "shared"))] == 1
    assert found["stratacache_function_misses_total", (("function", name),)] == 1
    assert found["stratacache_function_computations_total", (("function", name),)] == 1
    assert found["stratacache_function_compute_seconds_total", (("function", name),)] >= 0
    assert found["stratacache_function_lock_waits_total", (("function", name),)] == 0


def test_exposition_text_has_help_and_counter_types(stack: CacheStack) -> None:
    registry = CollectorRegistry()
    registry.register(StratacacheCollector(stack))
    text = generate_latest(registry).decode()
    assert "# HELP stratacache_hits_total Lookups that found the entry in the layer." in text
    assert "# TYPE stratacache_hits_total counter" in text
    assert 'stratacache_hits_total{layer="shared"} 0.0' in text


def test_collector_adds_up_its_stacks_and_forgets_dead_ones(stack: CacheStack) -> None:
    other = CacheStack()
    other.configure({"CACHE_TYPE": "SimpleCache"})
    stack.set("k", 1)
    other.set("k", 1)
    collector = StratacacheCollector(stack)
    collector.add(other)
    collector.add(other)
    registry = CollectorRegistry()
    registry.register(collector)
    assert samples(registry)["stratacache_sets_total", (("layer", "shared"),)] == 2
    del other
    gc.collect()
    assert samples(registry)["stratacache_sets_total", (("layer", "shared"),)] == 1


def test_registering_twice_in_one_registry_is_refused(stack: CacheStack) -> None:
    registry = CollectorRegistry()
    registry.register(StratacacheCollector(stack))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(StratacacheCollector(stack))


def test_hook_exports_a_stack_configured_with_cache_prometheus(exporter: None) -> None:
    exported, hidden = CacheStack(), CacheStack()
    exported.configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})
    exported.configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})  # again: once
    hidden.configure({"CACHE_TYPE": "SimpleCache"})

    @cached_for(minutes=1, stack=exported)
    def exported_function() -> int:
        return 1

    @cached_for(minutes=1, stack=hidden)
    def hidden_function() -> int:
        return 2

    exported_function()
    exported_function()
    hidden_function()
    text = generate_latest(prometheus_client.REGISTRY).decode()
    line = (
        f'stratacache_function_hits_total{{function="{__name__}.'
        f'{exported_function.__qualname__}",layer="local"}} 1.0'
    )
    assert line in text
    assert "hidden_function" not in text
    assert text.count("# TYPE stratacache_hits_total counter") == 1, "registered once"
    assert prometheus.default_collector() is prometheus.default_collector()


def test_pyproject_declares_the_plugin_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["stratacache.plugins"]["prometheus"] == (
        "stratacache_plugins.prometheus"
    )
    assert any(
        r.startswith("prometheus-client") for r in project["optional-dependencies"]["prometheus"]
    )


@pytest.mark.subprocess
def test_discovered_through_its_entry_point(tmp_path: Path) -> None:
    """A distribution declaring the entry point, as stratacache's own metadata does."""
    site = declaring_site(tmp_path / "site", "prometheus", "stratacache_plugins.prometheus")
    code = textwrap.dedent(
        """
        import sys
        import prometheus_client
        from stratacache import CacheStack, cached_for

        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})

        @cached_for(minutes=1, stack=stack)
        def rates():
            return 1

        rates()
        rates()
        text = prometheus_client.generate_latest().decode()
        assert 'stratacache_hits_total{layer="local"} 1.0' in text, text
        assert 'function="__main__.rates"' in text, text
        print("exported")
        """
    )
    result = run_python(code, env=clean_env(PYTHONPATH=root_pythonpath(site)))
    assert result.stdout.strip() == "exported"


@pytest.mark.subprocess
def test_prometheus_client_is_imported_only_when_enabled() -> None:
    code = textwrap.dedent(
        """
        import sys
        import stratacache
        from stratacache import CacheStack, plugin_manager

        assert "prometheus_client" not in sys.modules
        assert "stratacache_plugins.prometheus" not in sys.modules, "no plugin at import"

        from stratacache_plugins import prometheus
        assert "prometheus_client" not in sys.modules, "the plugin module does not import it"
        plugin_manager().register(prometheus, name="prometheus")
        CacheStack().configure({"CACHE_TYPE": "SimpleCache"})
        assert "prometheus_client" not in sys.modules, "CACHE_PROMETHEUS is false"

        CacheStack().configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})
        assert "prometheus_client" in sys.modules
        print("ok")
        """
    )
    assert run_python(code, env=clean_env(PYTHONPATH=root_pythonpath())).stdout.strip() == "ok"


@pytest.mark.subprocess
def test_without_prometheus_client_it_warns_and_does_nothing() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed

        from stratacache import CacheStack, cached_for, plugin_manager
        from stratacache_plugins import prometheus

        plugin_manager().register(prometheus, name="prometheus")
        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})
        stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_PROMETHEUS": True})

        @cached_for(minutes=1, stack=stack)
        def f():
            return 1

        assert f() == 1 and f() == 1
        assert stack.stats()["layers"]["local"]["hits"] == 1
        print("ok")
        """
    )
    result = run_python(code, env=clean_env(PYTHONPATH=root_pythonpath()))
    assert result.stdout.strip() == "ok"
    assert result.stderr.count("pip install 'stratacache[prometheus]'") == 1, result.stderr
