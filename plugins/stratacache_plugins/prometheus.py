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
  ``errors``, ``deserialization_failures`` and ``lock_waits``;
* ``stratacache_function_hits_total{function, layer}`` (``layer`` is ``local`` or
  ``shared``), and ``stratacache_function_<counter>_total{function}`` for ``misses``,
  ``sets``, ``deletes``, ``errors``, ``computations``, ``compute_errors``,
  ``compute_seconds``, ``lock_waits``, ``bypasses``, ``not_cached`` and ``refreshes``.

They add up the stacks registered with the collector (normally just ``stratacache.cache``).
The counts are this process's: under a pre-fork server (gunicorn), each worker exports its
own, and ``prometheus_client``'s multiprocess mode does not gather custom collectors.
"""

from __future__ import annotations

import logging
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from stratacache import (
    BackendOptions,
    CacheSettings,
    CacheStack,
    StatsSnapshot,
    hookimpl,
    option,
    renew_in_child,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["StratacacheCollector", "default_collector", "stratacache_configured"]

logger = logging.getLogger(__name__)

LAYER_COUNTERS = {
    "hits": "Lookups that found the entry in the layer.",
    "misses": "Lookups that did not find the entry in the layer.",
    "sets": "Entries written to the layer.",
    "deletes": "Entries deleted from the layer.",
    "errors": "Operations of the layer that failed (as its backend counts them).",
    "deserialization_failures": "Entries of the layer that could not be read back.",
    "lock_waits": "Waits for another process's lock (at_most_once).",
}
"""The per-layer counters and their help texts."""

FUNCTION_COUNTERS = {
    "misses": "Calls that found the entry in no layer.",
    "sets": "Entries written for the function.",
    "deletes": "Entries deleted by invalidate() and clear_cache().",
    "errors": "Cache failures seen through the function's calls.",
    "computations": "Runs of the function.",
    "compute_errors": "Runs of the function that raised.",
    "compute_seconds": "Seconds spent running the function.",
    "lock_waits": "Calls that waited for another caller's computation.",
    "bypasses": "Calls that skipped the cache (unless=, stratacache.bypass()).",
    "not_cached": "Computed results cache_if= refused to store.",
    "refreshes": "Recomputations asked for with f.refresh().",
}
"""The per-function counters (besides hits) and their help texts."""

_lock = threading.Lock()
_default: StratacacheCollector | None = None
_warned_missing = False


class StratacacheCollector:
    """A ``prometheus_client`` custom collector of the statistics of layer stacks.

    Args:
        *stacks: The stacks to report (more can be added with :meth:`add`). They are held
            by weak references: a stack that is garbage-collected stops being reported.
    """

    def __init__(self, *stacks: CacheStack) -> None:
        self._stacks: weakref.WeakSet[CacheStack] = weakref.WeakSet(stacks)
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")

    def add(self, stack: CacheStack) -> None:
        """Report ``stack`` too (adding it again changes nothing)."""
        with self._lock:
            self._stacks.add(stack)

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples: what a registry checks at registration."""
        return self._families({"enabled": True, "layers": {}, "functions": {}})

    def collect(self) -> Iterator[Metric]:
        """The metric families with the current counts of every stack, summed."""
        with self._lock:
            stacks = list(self._stacks)
        return self._families(_sum(stack.stats() for stack in stacks))

    def _families(self, stats: StatsSnapshot) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        for counter, help_text in LAYER_COUNTERS.items():
            family = CounterMetricFamily(f"stratacache_{counter}", help_text, labels=["layer"])
            for layer, layer_counts in stats["layers"].items():
                family.add_metric([layer], layer_counts[counter])  # type: ignore[literal-required]
            yield family
        hits = CounterMetricFamily(
            "stratacache_function_hits",
            "Calls of the function answered by its local layer or by the shared layer.",
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


def _sum(snapshots: Iterator[StatsSnapshot]) -> StatsSnapshot:
    """Add up the statistics of several stacks, counter by counter."""
    layers: dict[str, dict[str, Any]] = {}
    functions: dict[str, dict[str, Any]] = {}
    enabled = False
    for snapshot in snapshots:
        enabled |= snapshot["enabled"]
        for into, found in ((layers, snapshot["layers"]), (functions, snapshot["functions"])):
            for name, counts in found.items():
                total = into.setdefault(name, dict.fromkeys(counts, 0))
                for counter, value in counts.items():
                    total[counter] += value
    return cast(StatsSnapshot, {"enabled": enabled, "layers": layers, "functions": functions})


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


@hookimpl
def stratacache_configured(stack: CacheStack, settings: CacheSettings) -> None:
    """Export ``stack``'s statistics when ``CACHE_PROMETHEUS`` is true (see the module)."""
    global _warned_missing
    options = stack.plugin_options(PrometheusOptions)
    if not (isinstance(options, PrometheusOptions) and options.enabled):
        return
    try:
        collector = default_collector()
    except ImportError as exc:
        if not _warned_missing:
            _warned_missing = True
            logger.warning(
                "CACHE_PROMETHEUS is true but prometheus_client cannot be imported (%s):"
                " no metrics are exported. Install it with pip install"
                " 'stratacache[prometheus]'.",
                exc,
            )
        return
    collector.add(stack)
    if not settings.cache_stats:
        logger.warning(
            "CACHE_PROMETHEUS is true but CACHE_STATS is false: the exported counters stay 0"
        )


renew_in_child(sys.modules[__name__], "_lock")  # a child never inherits a held lock
