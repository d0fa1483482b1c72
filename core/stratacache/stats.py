"""Statistics: the counters behind :meth:`CacheStack.stats() <stratacache.CacheStack.stats>`.

Three kinds of counter objects, each a ``__slots__`` object of plain integers (and one float)
that the code counting an event increments in place (``counts.hits += 1``): no lock, no
function call, no clock read on the hit path.

* :class:`BackendStats`: what only a backend sees (failed operations it handled, unreadable
  entries, waits for another process's lock). Every :class:`~stratacache.Backend` has one as
  ``backend.stats``; the layer stack replaces it with its layer's :class:`LayerStats`, so
  the counts of a layer survive a reconfiguration that builds a new backend.
* :class:`LayerStats`: one per layer of a stack (``local``, ``local_no_serializer``,
  ``shared``): lookups that hit or missed, writes, deletes, plus the backend's counters.
* :class:`FunctionStats`: one per decorated function (by ``module.qualname``).

The local hit of a decorated function, the hot path, makes exactly one increment: its
function's ``local_hits``. A layer's ``hits`` in :meth:`StackStats.snapshot` adds up the
local hits of the functions that use it, so the layer view costs nothing on that path.
Everything else is counted where it happens, on paths that already cost a lookup in another
layer, a write or a computation.

Exactness under threads: an increment is a read, an addition and a write. On CPython with
the GIL, the interpreter switches threads only at calls and backward jumps (since 3.10), so
no other thread runs between the read and the write of ``counts.hits += 1`` on an ``int``
slot, and the counts are exact (``tests/test_stats.py`` hammers them from 16 threads). That
is an implementation detail, not a language guarantee: on a free-threaded build (3.13t) two
threads incrementing one counter at once can lose an increment, and the counts are then a
lower bound. They are statistics, never used for correctness. A lock or an
``itertools.count`` per counter would make them exact everywhere, at several times the cost.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from stratacache.counts import FunctionCounts, LayerCounts
from stratacache.forksafe import renew_in_child

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationCounts

__all__ = [
    "LAYER_NAMES",
    "BackendStats",
    "FunctionCounts",
    "FunctionStats",
    "LayerCounts",
    "LayerStats",
    "StackStats",
    "StatsSnapshot",
]

LAYER_NAMES = ("local", "local_no_serializer", "shared")
"""The seed's three tiers, which :meth:`StackStats.snapshot` always lists first.

A stack configured with ``CACHE_LAYERS`` adds its own tier names after them."""


_FUNCTION_COUNTERS = tuple(FunctionCounts.__annotations__)


class StatsSnapshot(TypedDict):
    """What :meth:`CacheStack.stats() <stratacache.CacheStack.stats>` returns: plain, JSON-ready.

    Attributes:
        enabled: Whether the stack counts (``CACHE_STATS``) in its current configuration.
        layers: :class:`LayerCounts` by layer name (every layer, always).
        functions: :class:`FunctionCounts` by the function's ``module.qualname``. Functions
            decorated more than once under one name (with different options) are summed.
        invalidation: The invalidation channel's state and counters, when the stack has
            coherent local tiers (see :mod:`stratacache.coherence`).
    """

    enabled: bool
    layers: dict[str, LayerCounts]
    functions: dict[str, FunctionCounts]
    invalidation: NotRequired[InvalidationCounts]


class BackendStats:
    """The events only a backend sees, counted by the backend itself (``self.stats``).

    Part of the backend contract (see :mod:`stratacache.backend`). A backend increments:

    Attributes:
        errors: An operation failed and the backend handled it (RedisCacheNoExceptions:
            a read that became a miss, a write that returned False, an operation skipped
            during the back-off after a failure) or reported it (RedisCache: the
            ``RedisCacheError`` it raised).
        deserialization_failures: A stored entry could not be read back (corrupted,
            unsigned, written by an incompatible version): deleted and a miss, or raised.
        lock_waits: A caller waited for another process's lock (``at_most_once``), counted
            once per wait, however many polls it took.

    Increment through ``self.stats`` each time, never through a reference kept aside: the
    layer stack replaces the object with its layer's counters.
    """

    __slots__ = ("deserialization_failures", "errors", "lock_waits")

    def __init__(self) -> None:
        self.errors = 0
        self.deserialization_failures = 0
        self.lock_waits = 0

    def add(self, other: BackendStats) -> None:
        """Add the backend counters of ``other`` to these."""
        self.errors += other.errors
        self.deserialization_failures += other.deserialization_failures
        self.lock_waits += other.lock_waits

    def reset(self) -> None:
        """Set every counter back to zero, in place."""
        BackendStats.__init__(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in _slots(type(self)))
        return f"{type(self).__name__}({fields})"


class LayerStats(BackendStats):
    """The counters of one layer of a stack (see :class:`LayerCounts`).

    The stack counts lookups, writes and deletes; the layer's backend, which holds this
    object as its ``stats``, counts the rest.
    """

    __slots__ = (
        "deletes",
        "hits",
        "misses",
        "recovery_dropped",
        "recovery_queued",
        "recovery_rechecked",
        "recovery_replayed",
        "sets",
    )

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.recovery_queued = 0
        self.recovery_replayed = 0
        self.recovery_dropped = 0
        self.recovery_rechecked = 0

    def reset(self) -> None:
        """Set every counter back to zero, in place."""
        LayerStats.__init__(self)

    def counts(self, extra_hits: int = 0) -> LayerCounts:
        """Return the counters as a plain dict, ``extra_hits`` added to ``hits``."""
        return LayerCounts(
            hits=self.hits + extra_hits,
            misses=self.misses,
            sets=self.sets,
            deletes=self.deletes,
            errors=self.errors,
            deserialization_failures=self.deserialization_failures,
            lock_waits=self.lock_waits,
            recovery_queued=self.recovery_queued,
            recovery_replayed=self.recovery_replayed,
            recovery_dropped=self.recovery_dropped,
            recovery_rechecked=self.recovery_rechecked,
        )


class FunctionStats:
    """The counters of one decorated function (see :class:`FunctionCounts`).

    Args:
        local_layer: The layer its local hits come from.
    """

    __slots__ = (
        "bypasses",
        "computations",
        "compute_errors",
        "compute_seconds",
        "deletes",
        "errors",
        "fail_safe_served",
        "hard_timeouts",
        "local_hits",
        "local_layer",
        "lock_waits",
        "manual_refreshes",
        "misses",
        "not_cached",
        "refreshes",
        "refreshes_dropped",
        "sets",
        "shared_hits",
        "soft_timeouts",
        "stale_served",
    )

    def __init__(self, local_layer: str = "local") -> None:
        self.local_layer = local_layer
        self.local_hits = 0
        self.shared_hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.computations = 0
        self.compute_errors = 0
        self.compute_seconds = 0.0
        self.lock_waits = 0
        self.refreshes = 0
        self.refreshes_dropped = 0
        self.stale_served = 0
        self.fail_safe_served = 0
        self.soft_timeouts = 0
        self.hard_timeouts = 0
        self.bypasses = 0
        self.not_cached = 0
        self.manual_refreshes = 0

    def reset(self) -> None:
        """Set every counter back to zero, in place."""
        FunctionStats.__init__(self, self.local_layer)

    def counts(self, into: FunctionCounts | None = None) -> FunctionCounts:
        """Return the counters as a plain dict, added to those of ``into`` if given."""
        if into is None:
            into = cast(FunctionCounts, dict.fromkeys(_FUNCTION_COUNTERS, 0))
            into["compute_seconds"] = 0.0
        for name in _FUNCTION_COUNTERS:
            into[name] += getattr(self, name)  # type: ignore[literal-required]
        return into

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"FunctionStats({fields})"


class StackStats:
    """Every counter of one layer stack: its layers' and its decorated functions'.

    A :class:`~stratacache.CacheStack` owns one for its whole life. Its counter objects are
    never replaced, only zeroed in place by :meth:`reset`, so code holding one (a decorated
    function, a backend) always counts into the live totals, across reconfigurations.

    Attributes:
        enabled: Whether the stack counts, from ``CACHE_STATS`` at its last configuration.
        layers: The :class:`LayerStats` of each layer, by name.
        functions: The :class:`FunctionStats` of each decorated function, by name and local
            layer.
    """

    __slots__ = ("__weakref__", "_lock", "enabled", "functions", "layers")

    def __init__(self) -> None:
        self.enabled = True
        self.layers: dict[str, LayerStats] = {name: LayerStats() for name in LAYER_NAMES}
        """Counters by tier name: the seed's three until a configuration names its own,
        then each tier a configuration has had (see :meth:`keep_only`)."""
        self.functions: dict[tuple[str, str], FunctionStats] = {}
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")

    def tier(self, name: str) -> LayerStats:
        """Return the counters of the tier ``name``, made on first use."""
        with self._lock:
            stats = self.layers.get(name)
            if stats is None:
                stats = self.layers[name] = LayerStats()
            return stats

    def keep_only(self, names: tuple[str, ...]) -> None:
        """Forget the tiers not in ``names`` that never counted anything.

        A stack configured with ``CACHE_LAYERS`` then lists its own tiers, not the seed's
        three at zero; a tier that counted something stays, its history kept.
        """
        with self._lock:
            for name in [n for n in self.layers if n not in names]:
                counts = self.layers[name].counts()
                if not any(counts.values()):
                    del self.layers[name]

    def function(self, name: str, local_layer: str) -> FunctionStats:
        """Return the counters of the function ``name`` using ``local_layer``, made on first use.

        Functions decorated under one ``module.qualname`` share their counters (as they share
        their entries), one object per local layer, so each layer gets its hits.
        """
        with self._lock:
            stats = self.functions.get((name, local_layer))
            if stats is None:
                stats = self.functions[name, local_layer] = FunctionStats(local_layer)
            return stats

    def snapshot(self) -> StatsSnapshot:
        """Return every counter as a plain, JSON-serializable dict (see :class:`StatsSnapshot`).

        A layer's ``hits`` include the local hits of the functions whose local layer it is.
        """
        with self._lock:
            functions = sorted(self.functions.items())
            layers = dict(self.layers)
        local_hits = dict.fromkeys(layers, 0)
        by_name: dict[str, FunctionCounts] = {}
        for (name, layer), stats in functions:
            local_hits[layer] = local_hits.get(layer, 0) + stats.local_hits
            by_name[name] = stats.counts(by_name.get(name))
        return StatsSnapshot(
            enabled=self.enabled,
            layers={
                name: layers.get(name, LayerStats()).counts(hits)
                for name, hits in local_hits.items()
            },
            functions=by_name,
        )

    def reset(self) -> None:
        """Zero every counter in place; the functions stay listed."""
        with self._lock:
            functions = list(self.functions.values())
        for layer in self.layers.values():
            layer.reset()
        for function in functions:
            function.reset()


def _slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        names += getattr(klass, "__slots__", ())
    return names
