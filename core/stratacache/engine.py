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
* A tier that degrades (auto-recovery) and failed a write on an unreachable store is told
  once the tiers above hold the value: it drops those copies when the store answers again.
* Invalidation deletes from every tier of the stack.
* With coherent local tiers (:mod:`stratacache.coherence`), a value read from (or written
  to) a deeper tier fills the tiers above only if no other instance's change reached this
  stack meanwhile: the value may be older than that change.

Each rule is written once, as a generator of the tier operations it needs (the ``*_rule``
functions, see :mod:`stratacache.driver`); the functions without the suffix run a rule
synchronously. A :class:`~stratacache.route.Route` is what one function (or the stack's own
API) reads and writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from stratacache.backend import NO_VALUE
from stratacache.coherence import epoch_of, unchanged_since
from stratacache.driver import RUN, Rule, drive
from stratacache.errors import SerializationError
from stratacache.freshness import Envelope
from stratacache.guard import WriteGuard
from stratacache.recovery import Recovery, failed_write, failures
from stratacache.route import UNCOUNTED, Route
from stratacache.tier import Tier

logger = logging.getLogger("stratacache.engine")

__all__ = [
    "UNCOUNTED",
    "Route",
    "below_rule",
    "clear_group_rule",
    "clear_rule",
    "compute",
    "compute_coordinated",
    "compute_rule",
    "coordinated_rule",
    "fill_rule",
    "first_counted",
    "keep_rule",
    "peek",
    "peek_rule",
    "read",
    "read_below",
    "read_rule",
    "remove_everywhere",
    "remove_rule",
    "write",
    "write_rule",
]


# -- the rules ---------------------------------------------------------------------------


def read_rule(route: Route, key: str) -> Rule[Any]:
    """Read the route's tiers top-down (see :func:`read`), counting each lookup."""
    value = yield (route.first, "lookup", (key, route.group))
    if first_counted(route, value):
        return value
    return (yield from below_rule(route, key, counted=True))


def first_counted(route: Route, value: Any) -> bool:
    """Count the first tier's answer ``value``; return whether it was a hit.

    A function's first-tier hits are counted as its ``local_hits`` (the tier's hits derive
    from them); the stack's own route counts the tier's hits.
    """
    first = route.first
    if value is NO_VALUE:
        first.stats.misses += 1
        return False
    if route.counts is UNCOUNTED:
        first.stats.hits += 1
    else:
        route.counts.local_hits += 1
    return True


def below_rule(route: Route, key: str, *, counted: bool) -> Rule[Any]:
    """Read the tiers below the first, deepest last; a hit fills the tiers above it."""
    tiers, group, fills = route.tiers, route.group, route.fills
    since = epoch_of(receiver := route.receiver)
    for index in range(1, len(tiers)):
        tier = tiers[index]
        if fills[index]:
            value, remaining = yield (tier, "lookup_entry", (key, group))
        else:
            value, remaining = (yield (tier, "lookup", (key, group))), None
        if value is not NO_VALUE:
            if counted:
                tier.stats.hits += 1
                route.counts.shared_hits += 1
            if route.debug:
                logger.debug("hit %s in tier %r (%s)", key, tier.name, group)
            if unchanged_since(receiver, since):
                yield from fill_rule(route, index, key, value, remaining)
            return value
        if counted:
            tier.stats.misses += 1
    if counted:
        route.counts.misses += 1
    if route.debug:
        logger.debug("miss %s in every tier (%s)", key, group)
    return NO_VALUE


def fill_rule(
    route: Route, index: int, key: str, value: Any, remaining: float | None
) -> Rule[None]:
    """Copy a value found in tier ``index`` into the tiers above it, deepest first.

    A function's envelope (read through the stack's ``get``) is not copied: above, it would
    be read as the function's plain value (:mod:`stratacache.freshrules` keeps those).
    """
    if Envelope.read(value) is not None:
        return
    tiers, timeouts = route.tiers, route.timeouts
    for above in range(index - 1, -1, -1):
        tier = tiers[above]
        seconds = tier.fill_timeout(remaining, timeouts[above])
        if seconds is None:  # expired on the way up
            return
        yield from keep_rule(route, tier, key, value, seconds)


def keep_rule(route: Route, tier: Tier, key: str, value: Any, seconds: float) -> Rule[bool]:
    """Store one copy of ``value`` in ``tier``; one that cannot serialize it is skipped."""
    try:
        stored = bool((yield (tier, "store", (key, value, seconds, route.group, route.tags))))
    except SerializationError as exc:
        route.counts.errors += 1
        route.on_unstorable(exc)
        return False
    if stored:
        route.counts.sets += 1
    return stored


def write_rule(
    route: Route, key: str, value: Any, *, below: int | None = None, strict: bool = False
) -> Rule[bool]:
    """Write a computed ``value`` into the route's tiers, deepest first (see :func:`write`)."""
    tiers, timeouts, group, counts = route.tiers, route.timeouts, route.group, route.counts
    start = len(tiers) - 1 if below is None else below - 1
    deepest_stored = False
    since = epoch_of(receiver := route.receiver)
    outage: Recovery | None = None
    for index in range(start, -1, -1):
        if index < start and not unchanged_since(receiver, since):
            break  # another instance changed something meanwhile: maybe this key
        tier, mark = tiers[index], failures(tiers[index])
        try:
            stored = yield (tier, "store", (key, value, timeouts[index], group, route.tags))
        except SerializationError as exc:  # the tiers above may still take it (pickle)
            if strict and index == start:
                raise
            counts.errors += 1
            route.on_unstorable(exc)
            stored = False
        if stored:
            counts.sets += 1
        if index:
            outage = failed_write(tier, mark, stored) or outage
        if index == start:
            deepest_stored = bool(stored)
    if outage is not None:  # the tiers above hold what its store missed
        outage.recheck(key, group)
    return deepest_stored


def compute_rule(
    route: Route, key: str, mode: str | None = None, guard: WriteGuard | None = None
) -> Rule[Any]:
    """Run the function for a missing ``key``, store its value, return it (see :func:`compute`)."""
    if mode is not None and not (len(route.tiers) == 1 and route.first.cache.in_process):
        return (yield from coordinated_rule(route, key, mode, guard))
    if guard is None:
        value = yield (None, RUN, ())
        if route.kept(value):
            yield from write_rule(route, key, value)
        return value
    stamp = guard.begin(key)
    try:
        value = yield (None, RUN, ())
    finally:
        fresh = guard.end(key, stamp)
    if fresh and route.kept(value):
        yield from write_rule(route, key, value)
    return value


def coordinated_rule(
    route: Route, key: str, mode: str, guard: WriteGuard | None = None
) -> Rule[Any]:
    """Compute under the deepest tier's coordination (see :func:`compute_coordinated`)."""
    tiers, counts = route.tiers, route.counts
    deepest = tiers[-1]
    mark = failures(deepest)
    computation = yield (deepest, "start_computation", (key, route.timeouts[-1], route.group, mode))
    if route.tags:  # written in the commit itself
        computation.tags = route.tags
    if computation.waited:
        counts.lock_waits += 1
    value = computation.value
    theirs = value is not NO_VALUE
    if not theirs:
        stamp = guard.begin(key) if guard is not None else (0, 0)
        try:
            value = yield (None, RUN, ())
        except BaseException:
            yield (deepest, "abort", (computation,))
            raise
        finally:
            fresh = guard.end(key, stamp) if guard is not None else True
        if not fresh or not route.kept(value):  # invalidated while computing, or cache_if
            yield (deepest, "abort", (computation,))
            return value
        try:
            committed = yield (deepest, "commit", (computation, value))
        except SerializationError as exc:
            yield (deepest, "abort", (computation,))
            counts.errors += 1
            route.on_unstorable(exc)
        else:
            if computation.stored:
                counts.sets += 1
            theirs = committed is not value  # another caller's value won
            value = committed
    if theirs:
        since = epoch_of(receiver := route.receiver)
        found, remaining = yield (deepest, "lookup_entry", (key, route.group))
        if found is not NO_VALUE and unchanged_since(receiver, since):
            yield from fill_rule(route, len(tiers) - 1, key, found, remaining)
        return value
    yield from write_rule(route, key, value, below=len(tiers) - 1)
    if len(tiers) > 1 and (outage := failed_write(deepest, mark, computation.stored)):
        outage.recheck(key, route.group)
    return value


# -- the rules, run synchronously --------------------------------------------------------


def read(route: Route, key: str) -> Any:
    """Return the value of ``key`` from the first tier of ``route`` that has it.

    A hit below the first tier fills the tiers above it. Returns
    :data:`~stratacache.NO_VALUE` when no tier has it. Counts one lookup per tier read (a
    function's first-tier hits are counted as its ``local_hits``, from which its first
    tier's hits are derived).

    This is :func:`read_rule` with its first step made inline: a first-tier hit does not
    pay for the driver.
    """
    value = route.first.lookup(key, route.group)
    if first_counted(route, value):
        return value
    return read_below(route, key)


def read_below(route: Route, key: str) -> Any:
    """Continue a read after a miss in the first tier (counted by the caller).

    Returns the value, or :data:`~stratacache.NO_VALUE` when no tier below has it.
    """
    if len(route.tiers) == 1:  # below_rule's answer without it: a local-only miss is hot
        route.counts.misses += 1
        return NO_VALUE
    return drive(below_rule(route, key, counted=True))


def peek_rule(route: Route, key: str) -> Rule[Any]:
    """Read the route's tiers top-down without counting (see :func:`peek`)."""
    value = yield (route.first, "lookup", (key, route.group))
    if value is not NO_VALUE or len(route.tiers) == 1:
        return value
    return (yield from below_rule(route, key, counted=False))


def peek(route: Route, key: str) -> Any:
    """Read every tier of ``route`` like :func:`read`, without counting the lookups.

    Single flight's leader uses it to re-check after its miss, which was counted once, and
    ``f.get()`` to read. This is :func:`peek_rule` with its first step made inline.
    """
    value = route.first.lookup(key, route.group)
    if value is not NO_VALUE or len(route.tiers) == 1:
        return value
    return drive(below_rule(route, key, counted=False))


def write(
    route: Route, key: str, value: Any, *, below: int | None = None, strict: bool = False
) -> bool:
    """Write a computed ``value`` (``None`` included) into the route's tiers, deepest first.

    ``below``: write only the tiers above this index (the deepest tier's write was an
    ``atomic_writes`` commit). ``strict``: raise the deepest tier's
    :class:`~stratacache.SerializationError` (what ``cache.set`` does) instead of skipping
    that tier with a warning. Returns whether the deepest tier written stored the value.
    """
    return drive(write_rule(route, key, value, below=below, strict=strict))


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
    return drive(compute_rule(route, key, mode, guard), run)


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
    return drive(coordinated_rule(route, key, mode, guard), run)


def remove_rule(tiers: tuple[Tier, ...], key: str, group: str | None = None) -> Rule[int]:
    """Delete ``key`` from every tier (each is asked); return how many held it.

    An in-process tier also drops the key's envelope (see :mod:`stratacache.freshness`), in
    the backend itself: an implementation detail, not an operation plugins see or count.
    """
    removed = 0
    for tier in tiers:
        held = bool((yield (tier, "remove", (key, group))))
        if tier.cache.in_process:
            held = bool((yield (tier, "drop_envelope", (key,)))) or held
        removed += held
    return removed


def clear_group_rule(tiers: tuple[Tier, ...], group: str) -> Rule[int]:
    """Delete every entry tracked in ``group`` from every tier; return how many went."""
    removed = 0
    for tier in tiers:
        removed += int((yield (tier, "clear_group", (group,))))
    return removed


def clear_rule(tiers: tuple[Tier, ...]) -> Rule[bool]:
    """Clear every tier (each is asked, whatever the others answer); return if all did."""
    cleared = True
    for tier in tiers:
        cleared = bool((yield (tier, "clear", ()))) and cleared
    return cleared


def remove_everywhere(tiers: tuple[Tier, ...], key: str, group: str | None = None) -> int:
    """Delete ``key`` from every tier (each is asked); return how many held it."""
    return drive(remove_rule(tiers, key, group))
