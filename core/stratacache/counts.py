"""The shapes of :meth:`CacheStack.stats() <stratacache.CacheStack.stats>`' counters.

A layer's and a decorated function's counters, as plain dicts; :mod:`stratacache.stats`
counts them and re-exports these names.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["FunctionCounts", "LayerCounts"]


class LayerCounts(TypedDict):
    """The counters of one layer in :meth:`CacheStack.stats() <stratacache.CacheStack.stats>`.

    Attributes:
        hits: Lookups that found the entry (decorated functions and ``cache.get``).
        misses: Lookups that did not.
        sets: Writes the backend accepted (it returned True).
        deletes: Entries removed (``invalidate``, ``clear_cache``, ``cache.delete``).
        errors: Operations that failed, as the backend counts them (see
            :class:`BackendStats`).
        deserialization_failures: Entries that could not be read back (a miss).
        lock_waits: Waits for another process's lock (``at_most_once``).
        recovery_queued: Invalidations its store missed (it was unreachable), kept to be
            replayed (see :mod:`stratacache.recovery`).
        recovery_replayed: Kept invalidations replayed once the store was back.
        recovery_dropped: Kept invalidations folded into one clear of the tier, past
            ``CACHE_RECOVERY_MAX`` (and local copies to recheck folded into one flush of
            the tiers above).
        recovery_rechecked: Local copies written above while the store failed the write,
            dropped from the tiers above once it answered again.
    """

    hits: int
    misses: int
    sets: int
    deletes: int
    errors: int
    deserialization_failures: int
    lock_waits: int
    recovery_queued: int
    recovery_replayed: int
    recovery_dropped: int
    recovery_rechecked: int


class FunctionCounts(TypedDict):
    """The counters of one decorated function in ``cache.stats()["functions"]``.

    Attributes:
        local_hits: Calls answered by its local layer (``local``, or ``local_no_serializer``
            with ``no_serialization=True``).
        shared_hits: Calls answered by the shared layer (after a local miss).
        misses: Calls that found the entry in no layer (they computed it, or waited for
            another caller's computation).
        sets: Entries written for it, one per layer written.
        deletes: Entries removed by ``invalidate`` and ``clear_cache``.
        errors: Cache failures seen through its calls: a result that could not be
            serialized (so not cached), or a :class:`~stratacache.CacheError` that reached
            the caller (RedisCache failing, ``AtomicWaitTimeout``).
        computations: Runs of the function.
        compute_errors: Runs that raised (the exception is never cached).
        compute_seconds: Time spent in those runs, in seconds.
        lock_waits: Calls that waited for another caller's computation of the same key (in
            this process with ``atomic_writes``, or across processes on the backend's lock).
        refreshes: Background refreshes of stale entries that ran the function
            (``refresh_after``/``stale_after``/``early_refresh``).
        refreshes_dropped: Refreshes not started because ``CACHE_REFRESH_WORKERS`` refreshes
            were already running (the next stale read asks again).
        stale_served: Calls answered with a stale value read from a tier while a refresh
            was asked for.
        fail_safe_served: Calls answered with the last good value because the computation
            failed (``fail_safe``); each is logged as a warning.
        soft_timeouts: Calls answered with a stale value after ``soft_timeout`` seconds,
            their computation left to finish in the background.
        hard_timeouts: Calls whose computation outlived ``hard_timeout`` (``ComputeTimeout``,
            or the fail-safe value), left to finish in the background.
        bypasses: Calls that skipped the cache, reading and writing nothing: ``unless=``
            was true, or they ran inside :func:`stratacache.bypass`.
        not_cached: Computed results that ``cache_if=`` refused to store.
        manual_refreshes: Recomputations asked for with ``f.refresh(...)``.
    """

    local_hits: int
    shared_hits: int
    misses: int
    sets: int
    deletes: int
    errors: int
    computations: int
    compute_errors: int
    compute_seconds: float
    lock_waits: int
    refreshes: int
    refreshes_dropped: int
    stale_served: int
    fail_safe_served: int
    soft_timeouts: int
    hard_timeouts: int
    bypasses: int
    not_cached: int
    manual_refreshes: int
