"""The read-through engine: the one home of the rules for reading, filling and writing tiers.

The decorator, :class:`~stratacache.CacheStack`'s ``get``/``set``/``delete``, single flight
and the Flask integration all call it. The rules:

* Reads walk a route's tiers top-down. The first tier is read by the caller (the
  decorator's compiled hot path, or :func:`read`); the engine reads the rest.
* A hit in tier *i* fills tiers *0..i-1*, deepest first, with the entry's **remaining**
  lifetime in tier *i* (read in the same round trip, from the store's clock), bounded by each
  tier's cap: no tier serves an entry past the expiry it had where it came from.
* A computed value is written deepest-first, each tier on its own: a tier that cannot
  serialize the value (a JSON shared tier, an unpicklable object) is skipped with one
  warning, and the tiers above still take it. With ``atomic_writes``, the deepest tier's
  commit takes the place of its write; the tiers above get the value that won.
* Invalidation deletes from every tier of the stack.

A :class:`Route` is what one function (or the stack's own API) reads and writes: its tiers,
their timeouts, its group and its counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stratacache.backend import NO_VALUE
from stratacache.errors import SerializationError
from stratacache.guard import WriteGuard
from stratacache.stats import FunctionStats
from stratacache.tier import Tier, bounded

if TYPE_CHECKING:
    from stratacache.stack import StackState

__all__ = [
    "UNCOUNTED",
    "Route",
    "compute",
    "compute_coordinated",
    "fill",
    "peek",
    "read",
    "read_below",
    "remove_everywhere",
    "write",
]

logger = logging.getLogger("stratacache.engine")

UNCOUNTED = FunctionStats()
"""Where the engine counts when ``CACHE_STATS`` is off: never read."""


class Route:
    """The tiers one function reads and writes, first to deepest, with their timeouts.

    Attributes:
        state: The stack state the route was built for (a reconfiguration makes a new one).
        tiers: The tiers, first to deepest.
        timeouts: Seconds each tier keeps a computed value: the function's timeout for the
            deepest tier, bounded by each tier's cap above it (0 = never expire).
        group: The key-tracking group (the function's ``module.qualname``) or ``None``.
        counts: The function's counters (:data:`UNCOUNTED` when the stack does not count).
        counting: Whether the stack counts (``CACHE_STATS``).
        first: The first tier.
        fills: For each tier, whether a tier above it keeps copies (so a hit there reads
            the entry's remaining lifetime to fill them).
        lookup: The first tier's read, as the hot path calls it: the backend's own bound
            ``lookup`` when no plugin hooks reads.
        on_unstorable: Called with the error when a tier cannot serialize a value.
    """

    __slots__ = (
        "counting",
        "counts",
        "fills",
        "first",
        "group",
        "lookup",
        "on_unstorable",
        "state",
        "tiers",
        "timeouts",
    )

    def __init__(
        self,
        state: StackState | None,
        tiers: tuple[Tier, ...],
        timeout: float,
        group: str | None,
        counts: FunctionStats,
        *,
        on_unstorable: Callable[[SerializationError], None] | None = None,
    ) -> None:
        self.state = state
        self.tiers = tiers
        last = len(tiers) - 1
        self.timeouts = tuple(
            timeout if i == last else bounded(timeout, tier.cap) for i, tier in enumerate(tiers)
        )
        # Whether a hit in tier i has a tier above it that keeps copies: only then does the
        # read ask for the entry's remaining lifetime (Redis: PTTL beside the GET).
        self.fills = tuple(any(t.cache.stores for t in tiers[:i]) for i in range(len(tiers)))
        self.group = group
        self.counting = state is not None and state.counting
        self.counts = counts if self.counting else UNCOUNTED
        self.first = tiers[0]
        fast = self.first.fast_lookup
        first, grp = self.first, group
        self.lookup: Callable[[str], Any] = (
            fast if fast is not None else (lambda key: first.lookup(key, grp))
        )
        self.on_unstorable = on_unstorable or _warn_unstorable

    def __repr__(self) -> str:
        names = " > ".join(t.name for t in self.tiers)
        return f"<Route {self.group or '(stack)'}: {names}>"


def read(route: Route, key: str) -> Any:
    """Return the value of ``key`` from the first tier of ``route`` that has it.

    A hit below the first tier fills the tiers above it. Returns
    :data:`~stratacache.NO_VALUE` when no tier has it. Counts one lookup per tier read (a
    function's first-tier hits are counted as its ``local_hits``, from which its first
    tier's hits are derived).
    """
    first, counts = route.first, route.counts
    value = first.lookup(key, route.group)
    if value is not NO_VALUE:
        if counts is UNCOUNTED:
            first.stats.hits += 1
        else:
            counts.local_hits += 1
        return value
    first.stats.misses += 1
    return read_below(route, key)


def read_below(route: Route, key: str) -> Any:
    """Continue a read after a miss in the first tier (counted by the caller).

    Returns the value, or :data:`~stratacache.NO_VALUE` when no tier below has it.
    """
    return _below(route, key, counted=True)


def peek(route: Route, key: str) -> Any:
    """Read every tier of ``route`` like :func:`read`, without counting the lookups.

    Single flight's leader uses it to re-check after its miss, which was counted once.
    """
    value = route.first.lookup(key, route.group)
    return value if value is not NO_VALUE else _below(route, key, counted=False)


def _below(route: Route, key: str, *, counted: bool) -> Any:
    tiers, group, fills = route.tiers, route.group, route.fills
    for index in range(1, len(tiers)):
        tier = tiers[index]
        if fills[index]:
            value, remaining = tier.lookup_entry(key, group)
        else:
            value, remaining = tier.lookup(key, group), None
        if value is not NO_VALUE:
            if counted:
                tier.stats.hits += 1
                route.counts.shared_hits += 1
            fill(route, index, key, value, remaining)
            return value
        if counted:
            tier.stats.misses += 1
    if counted:
        route.counts.misses += 1
    return NO_VALUE


def fill(route: Route, index: int, key: str, value: Any, remaining: float | None) -> None:
    """Copy a value found in tier ``index`` into the tiers above it, deepest first."""
    tiers, timeouts, group, counts = route.tiers, route.timeouts, route.group, route.counts
    for above in range(index - 1, -1, -1):
        tier = tiers[above]
        seconds = tier.fill_timeout(remaining, timeouts[above])
        if seconds is None:  # expired on the way up
            return
        try:
            if tier.store(key, value, seconds, group):
                counts.sets += 1
        except SerializationError as exc:
            counts.errors += 1
            route.on_unstorable(exc)


def write(
    route: Route, key: str, value: Any, *, below: int | None = None, strict: bool = False
) -> bool:
    """Write a computed ``value`` into the route's tiers, deepest first.

    Args:
        route: The route.
        key: The key.
        value: The value (``None`` included).
        below: Write only the tiers above this index (the deepest tier's write was an
            ``atomic_writes`` commit); ``None`` writes every tier.
        strict: Raise the deepest tier's :class:`~stratacache.SerializationError` (what
            ``cache.set`` does) instead of skipping that tier with a warning.

    Returns:
        Whether the deepest tier written stored the value.
    """
    tiers, timeouts, group, counts = route.tiers, route.timeouts, route.group, route.counts
    start = len(tiers) - 1 if below is None else below - 1
    deepest_stored = False
    for index in range(start, -1, -1):
        try:
            stored = tiers[index].store(key, value, timeouts[index], group)
        except SerializationError as exc:  # the tiers above may still take it (pickle)
            if strict and index == start:
                raise
            counts.errors += 1
            route.on_unstorable(exc)
            stored = False
        if stored:
            counts.sets += 1
        if index == start:
            deepest_stored = stored
    return deepest_stored


def compute(
    route: Route,
    key: str,
    run: Callable[[], Any],
    mode: str | None = None,
    guard: WriteGuard | None = None,
) -> Any:
    """Run the function for a missing ``key``, store its value, return it.

    Args:
        route: The function's route.
        key: The key.
        run: Calls the function.
        mode: ``atomic_writes`` (``"at_most_once"``, ``"at_least_once"``) or ``None``. With
            a mode, the deepest tier coordinates the computation (see
            :func:`compute_coordinated`), unless the route is one in-process tier, where
            single flight already runs the function once.
        guard: The function's :class:`~stratacache.guard.WriteGuard`: a value whose key was
            invalidated while it was computed is returned, not written.
    """
    if mode is not None and not (len(route.tiers) == 1 and route.first.cache.in_process):
        return compute_coordinated(route, key, run, mode, guard)
    if guard is None:
        value = run()
        write(route, key, value)
        return value
    stamp = guard.begin(key)
    try:
        value = run()
    finally:
        fresh = guard.end(key, stamp)
    if fresh:
        write(route, key, value)
    return value


def compute_coordinated(
    route: Route, key: str, run: Callable[[], Any], mode: str, guard: WriteGuard | None = None
) -> Any:
    """Compute under the deepest tier's ``atomic_writes`` coordination, then fill the rest.

    The deepest backend may wait for another process's result (then the function does not
    run) or take a lock; its commit returns the value that won. A value that came from
    another caller fills the tiers above with its remaining lifetime, read from the deepest
    tier, like any hit. A value the deepest tier cannot serialize is not stored there (its
    lock is released), and the tiers above still take it.
    """
    tiers, counts = route.tiers, route.counts
    deepest = tiers[-1]
    computation = deepest.start_computation(key, route.timeouts[-1], route.group, mode)
    if computation.waited:
        counts.lock_waits += 1
    value = computation.value
    theirs = value is not NO_VALUE
    if not theirs:
        stamp = guard.begin(key) if guard is not None else (0, 0)
        try:
            value = run()
        except BaseException:
            computation.abort()
            raise
        finally:
            fresh = guard.end(key, stamp) if guard is not None else True
        if not fresh:  # invalidated while computing: the caller gets it, no tier does
            computation.abort()
            return value
        try:
            committed = deepest.commit(computation, value)
        except SerializationError as exc:
            computation.abort()
            counts.errors += 1
            route.on_unstorable(exc)
        else:
            if computation.stored:
                counts.sets += 1
            theirs = committed is not value  # another caller's value won
            value = committed
    if theirs:
        found, remaining = deepest.lookup_entry(key, route.group)
        if found is not NO_VALUE:
            fill(route, len(tiers) - 1, key, found, remaining)
        return value
    write(route, key, value, below=len(tiers) - 1)
    return value


def remove_everywhere(tiers: tuple[Tier, ...], key: str, group: str | None = None) -> int:
    """Delete ``key`` from every tier (each is asked); return how many held it."""
    return sum(tier.remove(key, group) for tier in tiers)


def _warn_unstorable(exc: SerializationError) -> None:
    logger.warning("value not cached in a tier, it cannot be serialized: %s", exc)
