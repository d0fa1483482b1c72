"""The OpenTelemetry plugin: ``cache.stats()`` as observable metrics, spans for the slow path.

A hook plugin, declared in the ``stratacache.plugins`` entry-point group by stratacache's
``pyproject.toml`` like any third party's. When a stack is configured with
``CACHE_OTEL=true`` it

* adds the stack to a :class:`StratacacheMetrics`, observable instruments (counters with
  callbacks) on the global meter provider: they read ``stack.stats()`` when the SDK collects,
  so the cached calls pay nothing for them;
* registers a :class:`SlowPathTracer`, which implements ``stratacache_slow_path``: a span
  ``stratacache.miss`` around the rest of a call whose first tier missed,
  ``stratacache.compute`` around each run of the function inside it, and
  ``stratacache.refresh`` around a background refresh of a stale entry (a child of the
  ``stratacache.miss`` span of the call that found it stale, ending after it; its
  ``stratacache.compute`` inside). A hit in the first tier opens no span and makes no
  pluggy call: the hook is called only after a miss.

Both use the global providers (``opentelemetry.metrics.set_meter_provider``,
``opentelemetry.trace.set_tracer_provider``), which the application's SDK setup installs;
without an SDK, the API's no-op providers record nothing. Install the API with
``pip install 'stratacache[otel]'``; it is imported only when ``CACHE_OTEL`` is true. Once
registered, the tracer traces the misses of every stack of the process.

To use providers of your own, leave ``CACHE_OTEL`` false and build the parts yourself::

    StratacacheMetrics(stratacache.cache, meter_provider=provider)
    stratacache.plugin_manager().register(SlowPathTracer(tracer_provider=tracer_provider))

Metrics (the function family breaks the layer one down, so never add the two):

* ``stratacache.layer.<counter>`` with the attribute ``stratacache.layer``, for ``hits``,
  ``misses``, ``sets``, ``deletes``, ``errors``, ``deserialization_failures`` and
  ``lock_waits``;
* ``stratacache.function.hits`` with ``stratacache.function`` and ``stratacache.layer``
  (``local`` or ``shared``), and ``stratacache.function.<counter>`` with
  ``stratacache.function`` for ``misses``, ``sets``, ``deletes``, ``errors``,
  ``computations``, ``compute_errors``, ``compute_seconds`` (unit ``s``), ``lock_waits`` and
  the freshness counters (``refreshes``, ``refreshes_dropped``, ``stale_served``,
  ``fail_safe_served``, ``soft_timeouts``, ``hard_timeouts``);
* the layer family also has the auto-recovery counters (``recovery_queued``,
  ``recovery_replayed``, ``recovery_dropped``, ``recovery_rechecked``, see
  :mod:`stratacache.recovery`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from stratacache import (
    BackendOptions,
    CacheSettings,
    CacheStack,
    hookimpl,
    option,
    plugin_manager,
    renew_in_child,
)
from stratacache_plugins._counters import (
    FUNCTION_COUNTERS,
    FUNCTION_HITS,
    LAYER_COUNTERS,
    Stacks,
    Switch,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import TracerProvider

__all__ = [
    "OtelOptions",
    "SlowPathTracer",
    "StratacacheMetrics",
    "stratacache_configured",
    "stratacache_options",
]

logger = logging.getLogger(__name__)

INSTRUMENTATION = "stratacache"
"""The instrumentation scope of the meter and the tracer."""

TRACER_NAME = "stratacache_plugins.otel.tracer"
"""The name the tracer is registered under in the plugin manager."""

_lock = threading.Lock()
_default: StratacacheMetrics | None = None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stratacache")
    except PackageNotFoundError:  # a source checkout on sys.path
        return ""


class StratacacheMetrics:
    """Observable instruments that read the statistics of layer stacks when collected.

    Args:
        *stacks: The stacks to report (more with :meth:`add`), held by weak references.
        meter_provider: The provider of the meter; the global one by default.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, *stacks: CacheStack, meter_provider: MeterProvider | None = None) -> None:
        from opentelemetry import metrics

        self._stacks = Stacks(*stacks)
        meter = metrics.get_meter(INSTRUMENTATION, _version(), meter_provider=meter_provider)
        for counter, text in LAYER_COUNTERS.items():
            meter.create_observable_counter(
                f"stratacache.layer.{counter}",
                [self._layer_observer(counter)],
                unit="1",
                description=text,
            )
        meter.create_observable_counter(
            "stratacache.function.hits",
            [self._observe_function_hits],
            unit="1",
            description=FUNCTION_HITS,
        )
        for counter, text in FUNCTION_COUNTERS.items():
            meter.create_observable_counter(
                f"stratacache.function.{counter}",
                [self._function_observer(counter)],
                unit="s" if counter == "compute_seconds" else "1",
                description=text,
            )

    def add(self, stack: CacheStack) -> None:
        """Report ``stack`` too (adding it again changes nothing)."""
        self._stacks.add(stack)

    def _layer_observer(self, counter: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(counts[counter], {"stratacache.layer": layer})  # type: ignore[literal-required]
                for layer, counts in self._stacks.stats()["layers"].items()
            ]

        return observe

    def _observe_function_hits(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [
            Observation(hits, {"stratacache.function": name, "stratacache.layer": layer})
            for name, counts in self._stacks.stats()["functions"].items()
            for layer, hits in (("local", counts["local_hits"]), ("shared", counts["shared_hits"]))
        ]

    def _function_observer(
        self, counter: str
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(counts[counter], {"stratacache.function": name})  # type: ignore[literal-required]
                for name, counts in self._stacks.stats()["functions"].items()
            ]

        return observe


class SlowPathTracer:
    """Spans for the slow path: ``stratacache.miss``, ``.compute`` and ``.refresh``.

    Register it with ``stratacache.plugin_manager().register(tracer)``; the routes built after
    (at the next call of each function) call it on their misses.

    Args:
        tracer_provider: The provider of the tracer; the global one by default.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import trace

        self._tracer = trace.get_tracer(
            INSTRUMENTATION, _version(), tracer_provider=tracer_provider
        )

    @hookimpl
    def stratacache_slow_path(
        self, event: str, function: str | None
    ) -> AbstractContextManager[Any]:
        """Open the span ``stratacache.<event>`` (current while the step runs)."""
        attributes = {"stratacache.function": function} if function is not None else None
        return self._tracer.start_as_current_span(f"stratacache.{event}", attributes=attributes)


class OtelOptions(BackendOptions):
    """The keys this plugin owns."""

    enabled: bool = option(
        False,
        key="OTEL",
        accepts="true or false (also 1/0, yes/no, on/off); needs pip install 'stratacache[otel]'",
        description="Export cache.stats() as OpenTelemetry metrics and trace misses,"
        " computations and refreshes, through the global meter and tracer providers.",
        strict=False,
    )


@hookimpl
def stratacache_options() -> type[BackendOptions]:
    """Declare ``CACHE_OTEL``."""
    return OtelOptions


def _default_metrics() -> StratacacheMetrics:
    global _default
    with _lock:
        if _default is None:
            _default = StratacacheMetrics()
        return _default


_switch = Switch("CACHE_OTEL", OtelOptions, "opentelemetry", "otel", logger)


@hookimpl
def stratacache_configured(stack: CacheStack, settings: CacheSettings) -> None:
    """Export ``stack``'s statistics and trace misses when ``CACHE_OTEL`` is true."""
    if not _switch.on(stack):
        return
    try:
        metrics = _default_metrics()
        manager = plugin_manager()
        if manager.get_plugin(TRACER_NAME) is None:
            manager.register(SlowPathTracer(), name=TRACER_NAME)
    except ImportError as exc:
        _switch.missing(exc, "no metrics and no spans")
        return
    metrics.add(stack)
    _switch.exported(settings)


renew_in_child(sys.modules[__name__], "_lock")  # a child never inherits a held lock
