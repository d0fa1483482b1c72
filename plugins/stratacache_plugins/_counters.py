"""What the metrics plugins export: the counters of ``stats()``, summed over a set of stacks.

The Prometheus exporter (:mod:`stratacache_plugins.prometheus`) and the OpenTelemetry plugin
(:mod:`stratacache_plugins.otel`) both read :meth:`CacheStack.stats()
<stratacache.CacheStack.stats>` when they are collected, through a :class:`Stacks`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any, cast

from stratacache import BackendOptions, CacheSettings, CacheStack, StatsSnapshot, renew_in_child

__all__ = [
    "FUNCTION_COUNTERS",
    "INVALIDATION_COUNTERS",
    "LAYER_COUNTERS",
    "Stacks",
    "Switch",
    "sum_snapshots",
]

LAYER_COUNTERS = {
    "hits": "Lookups that found the entry in the layer.",
    "misses": "Lookups that did not find the entry in the layer.",
    "sets": "Entries written to the layer.",
    "deletes": "Entries deleted from the layer.",
    "errors": "Operations of the layer that failed (as its backend counts them).",
    "deserialization_failures": "Entries of the layer that could not be read back.",
    "lock_waits": "Waits for another process's lock (at_most_once).",
    "recovery_queued": "Invalidations the layer's store missed, kept to replay once it is back.",
    "recovery_replayed": "Kept invalidations replayed once the layer's store was back.",
    "recovery_dropped": "Kept invalidations folded into one clear of the layer"
    " (past CACHE_RECOVERY_MAX).",
    "recovery_rechecked": "Local copies written during an outage of the layer's store, dropped"
    " from the layers above once it answered.",
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
    "refreshes": "Background refreshes of stale entries that ran the function.",
    "refreshes_dropped": "Refreshes not started: CACHE_REFRESH_WORKERS were busy.",
    "stale_served": "Calls answered with a stale value while a refresh was asked for.",
    "fail_safe_served": "Calls answered with the last good value after a failure.",
    "soft_timeouts": "Calls answered with a stale value after soft_timeout.",
    "hard_timeouts": "Computations that outlived hard_timeout.",
    "bypasses": "Calls that skipped the cache (unless=, stratacache.bypass()).",
    "not_cached": "Computed results cache_if= refused to store.",
    "manual_refreshes": "Recomputations asked for with f.refresh().",
}
"""The per-function counters (besides hits) and their help texts."""

INVALIDATION_COUNTERS = {
    "received": "Invalidations received from other instances and applied to the local tiers.",
    "keys_dropped": "Keys those invalidations dropped from the local tiers.",
    "flushes_after_loss": "Flushes of the local tiers because the invalidation channel was"
    " lost, or back after a loss.",
}
"""The invalidation channel's counters and their help texts."""

FUNCTION_HITS = "Calls of the function answered by its local layer or by the shared layer."
"""The help text of the per-function hits, by layer (``local``, ``shared``)."""


def sum_snapshots(snapshots: Iterable[StatsSnapshot]) -> StatsSnapshot:
    """Add up the statistics of several stacks, counter by counter.

    The invalidation channels' counters add up too; their state is the worst of them.
    """
    layers: dict[str, dict[str, Any]] = {}
    functions: dict[str, dict[str, Any]] = {}
    enabled = False
    channels: dict[str, int] = {}
    states: set[str] = set()
    for snapshot in snapshots:
        enabled |= snapshot["enabled"]
        found_channel = snapshot.get("invalidation")
        if found_channel is not None:
            states.add(found_channel["state"])
            for counter in INVALIDATION_COUNTERS:
                value = found_channel[counter]  # type: ignore[literal-required]
                channels[counter] = channels.get(counter, 0) + value
        for into, found in ((layers, snapshot["layers"]), (functions, snapshot["functions"])):
            for name, counts in found.items():
                total = into.setdefault(name, dict.fromkeys(counts, 0))
                for counter, value in counts.items():
                    total[counter] += value
    summed: dict[str, Any] = {"enabled": enabled, "layers": layers, "functions": functions}
    if channels:
        worst = next((s for s in ("lost", "connecting", "subscribed") if s in states), "off")
        summed["invalidation"] = {**channels, "state": worst}
    return cast(StatsSnapshot, summed)


class Stacks:
    """The stacks a plugin reports, held by weak references (a collected stack drops out).

    Args:
        *stacks: The first stacks to report.
    """

    def __init__(self, *stacks: CacheStack) -> None:
        self._stacks: weakref.WeakSet[CacheStack] = weakref.WeakSet(stacks)
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")

    def add(self, stack: CacheStack) -> None:
        """Report ``stack`` too (adding it again changes nothing)."""
        with self._lock:
            self._stacks.add(stack)

    def stats(self) -> StatsSnapshot:
        """The statistics of every stack, summed."""
        with self._lock:
            stacks = list(self._stacks)
        return sum_snapshots(stack.stats() for stack in stacks)


class Switch:
    """A metrics plugin's ``CACHE_<KEY>`` switch, and the warnings of turning it on.

    Args:
        key: The key (``CACHE_PROMETHEUS``), whose model's ``enabled`` field it reads.
        model: The plugin's options model.
        module: The client the plugin imports when on (``prometheus_client``).
        extra: The extra that installs it (``prometheus``).
        logger: The plugin's logger.
    """

    def __init__(
        self,
        key: str,
        model: type[BackendOptions],
        module: str,
        extra: str,
        logger: logging.Logger,
    ) -> None:
        self.key, self.model, self.module, self.extra = key, model, module, extra
        self.logger = logger
        self._warned = False

    def on(self, stack: CacheStack) -> bool:
        """Whether ``stack`` was configured with the key true."""
        options = stack.plugin_options(self.model)
        return isinstance(options, self.model) and getattr(options, "enabled", False) is True

    def missing(self, exc: ImportError, lost: str) -> None:
        """Warn, once per process, that the client cannot be imported, so ``lost``."""
        if self._warned:
            return
        self._warned = True
        self.logger.warning(
            "%s is true but %s cannot be imported (%s): %s. Install it with pip install"
            " 'stratacache[%s]'.",
            self.key,
            self.module,
            exc,
            lost,
            self.extra,
        )

    def exported(self, settings: CacheSettings) -> None:
        """Warn when the stack just exported does not count (``CACHE_STATS`` false)."""
        if not settings.cache_stats:
            self.logger.warning(
                "%s is true but CACHE_STATS is false: the exported counters stay 0", self.key
            )
