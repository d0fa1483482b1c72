"""The Prometheus exporter: ``cache.stats()`` as Prometheus metrics, read at scrape time.

A hook plugin, declared in the ``stratacache.plugins`` entry-point group by stratacache's
``pyproject.toml`` like any third party's. It implements one hook,
``stratacache_configured``: when a stack is configured with ``CACHE_PROMETHEUS=true``, it
registers (once per process) a :class:`StratacacheCollector` in ``prometheus_client``'s
default registry and adds the stack to it. The collector reads ``stack.stats()`` when
Prometheus scrapes, so the cached calls pay nothing for it. Install the client with
``pip install 'stratacache[prometheus]'``.

``prometheus_client`` is imported only there: not by this module, not when
``CACHE_PROMETHEUS`` is false, and never by ``import stratacache`` (which loads no plugin).
Without ``prometheus_client``, the hook logs one warning naming the extra and does nothing.

To export to a registry of your own (``prometheus_client.CollectorRegistry()``), leave
``CACHE_PROMETHEUS`` false and register the collector yourself::

    registry.register(StratacacheCollector(stratacache.cache))

Metrics (counters; the function family breaks the layer one down, so never add the two):

* ``stratacache_<counter>_total{layer}``, for ``hits``, ``misses``, ``sets``, ``deletes``,
  ``errors``, ``deserialization_failures``, ``lock_waits`` and the auto-recovery counters
  ``recovery_queued``, ``recovery_replayed``, ``recovery_dropped``, ``recovery_rechecked``;
* ``stratacache_function_hits_total{function, layer}`` (``layer`` is ``local`` or
  ``shared``), and ``stratacache_function_<counter>_total{function}`` for ``misses``,
  ``sets``, ``deletes``, ``errors``, ``computations``, ``compute_errors``,
  ``compute_seconds``, ``lock_waits``, and the freshness counters ``refreshes``,
  ``refreshes_dropped``, ``stale_served``, ``fail_safe_served``, ``soft_timeouts``,
  ``hard_timeouts``, and ``bypasses``, ``not_cached`` and ``manual_refreshes``.

They add up the stacks registered with the collector (normally just ``stratacache.cache``).
The counts are this process's: under a pre-fork server (gunicorn), each worker exports its
own, and ``prometheus_client``'s multiprocess mode does not gather custom collectors.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from stratacache import (
    BackendOptions,
    CacheSettings,
    CacheStack,
    StatsSnapshot,
    hookimpl,
    option,
    renew_in_child,
)
from stratacache_plugins._counters import (
    FUNCTION_COUNTERS,
    FUNCTION_HITS,
    INVALIDATION_COUNTERS,
    LAYER_COUNTERS,
    Stacks,
    Switch,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from stratacache.coherence import InvalidationCounts

__all__ = [
    "FUNCTION_COUNTERS",
    "INVALIDATION_COUNTERS",
    "LAYER_COUNTERS",
    "StratacacheCollector",
    "default_collector",
    "stratacache_configured",
]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_default: StratacacheCollector | None = None


class StratacacheCollector:
    """A ``prometheus_client`` custom collector of the statistics of layer stacks.

    Args:
        *stacks: The stacks to report (more can be added with :meth:`add`). They are held
            by weak references: a stack that is garbage-collected stops being reported.
    """

    def __init__(self, *stacks: CacheStack) -> None:
        self._stacks = Stacks(*stacks)

    def add(self, stack: CacheStack) -> None:
        """Report ``stack`` too (adding it again changes nothing)."""
        self._stacks.add(stack)

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples: what a registry checks at registration."""
        return self._families({"enabled": True, "layers": {}, "functions": {}})

    def collect(self) -> Iterator[Metric]:
        """The metric families with the current counts of every stack, summed."""
        return self._families(self._stacks.stats())

    def _families(self, stats: StatsSnapshot) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        for counter, help_text in LAYER_COUNTERS.items():
            family = CounterMetricFamily(f"stratacache_{counter}", help_text, labels=["layer"])
            for layer, layer_counts in stats["layers"].items():
                family.add_metric([layer], layer_counts[counter])  # type: ignore[literal-required]
            yield family
        hits = CounterMetricFamily(
            "stratacache_function_hits",
            FUNCTION_HITS,
            labels=["function", "layer"],
        )
        for function, function_counts in stats["functions"].items():
            hits.add_metric([function, "local"], function_counts["local_hits"])
            hits.add_metric([function, "shared"], function_counts["shared_hits"])
        yield hits
        for counter, help_text in FUNCTION_COUNTERS.items():
            family = CounterMetricFamily(
                f"stratacache_function_{counter}", help_text, labels=["function"]
            )
            for function, function_counts in stats["functions"].items():
                value = function_counts[counter]  # type: ignore[literal-required]
                family.add_metric([function], value)
            yield family
        yield from _invalidation_families(stats.get("invalidation"))


def _invalidation_families(counts: InvalidationCounts | None) -> Iterator[Metric]:
    """The invalidation channel's counters, and its state as a 0/1 gauge per state."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    for counter, help_text in INVALIDATION_COUNTERS.items():
        family = CounterMetricFamily(f"stratacache_invalidation_{counter}", help_text)
        if counts is not None:
            family.add_metric([], counts[counter])  # type: ignore[literal-required]
        yield family
    state = GaugeMetricFamily(
        "stratacache_invalidation_channel",
        "1 for the invalidation channel's state (connecting, subscribed, lost, off).",
        labels=["state"],
    )
    if counts is not None:
        for name in ("connecting", "subscribed", "lost", "off"):
            state.add_metric([name], int(counts["state"] == name))
    yield state


def default_collector() -> StratacacheCollector:
    """Return the collector registered in ``prometheus_client.REGISTRY`` (registering it once).

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    global _default
    with _lock:
        if _default is None:
            from prometheus_client import REGISTRY

            collector = StratacacheCollector()
            REGISTRY.register(collector)
            _default = collector
        return _default


class PrometheusOptions(BackendOptions):
    """The keys this plugin owns."""

    enabled: bool = option(
        False,
        key="PROMETHEUS",
        accepts="true or false (also 1/0, yes/no, on/off); needs pip install"
        " 'stratacache[prometheus]'",
        description="Export cache.stats() to prometheus_client's default registry.",
        strict=False,
    )


@hookimpl
def stratacache_options() -> type[BackendOptions]:
    """Declare ``CACHE_PROMETHEUS``."""
    return PrometheusOptions


_switch = Switch("CACHE_PROMETHEUS", PrometheusOptions, "prometheus_client", "prometheus", logger)


@hookimpl
def stratacache_configured(stack: CacheStack, settings: CacheSettings) -> None:
    """Export ``stack``'s statistics when ``CACHE_PROMETHEUS`` is true (see the module)."""
    if not _switch.on(stack):
        return
    try:
        collector = default_collector()
    except ImportError as exc:
        _switch.missing(exc, "no metrics are exported")
        return
    collector.add(stack)
    _switch.exported(settings)


renew_in_child(sys.modules[__name__], "_lock")  # a child never inherits a held lock
