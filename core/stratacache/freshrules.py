"""The engine's rules for functions with freshness options: envelopes read, kept and refreshed.

Like :mod:`stratacache.engine`'s, each rule is a generator of tier operations, run by
:func:`~stratacache.driver.drive` for synchronous functions and
:func:`~stratacache.driver.adrive` for ``async def`` ones (see :mod:`stratacache.freshness`
for the envelope and where each tier keeps it):

* **Read** (:func:`read_rule`): every tier's envelope, top-down, stopping at a fresh one; a
  stale one found above is kept while a fresher one is looked for below. The best found
  fills the tiers above it. With a fail-safe window, a tier that fails to answer counts as a
  miss (the stale value above may answer for it).
* **Keep** (:func:`store_rule`): a tier outside the process gets the envelope under the key;
  an in-process tier gets the plain value until the soft expiry under the key, and the
  envelope under the companion key. Every copy lives at most what the envelope has left
  (the hard expiry plus the fail-safe window), and what the store below said it has left.
* **Compute** (:func:`compute_rule`): run the function, wrap the value, keep it everywhere.
  With ``atomic_writes="at_most_once"`` (:func:`coordinated_rule`), under the deepest
  tier's refresh lease (RedisCacheAtomic's ``at_most_once`` lock, as a refresh): a caller
  that cannot take it waits for the holder's envelope instead of computing.
* **Refresh** (:func:`refresh_rule`): claim the refresh on the deepest tier (a backend that
  coordinates processes holds its ``at_most_once`` lock meanwhile; another process holding
  it means that process refreshes), re-read the deepest envelope (a refresh that just
  finished elsewhere makes this one a fill), else compute.
* **Serve stale** (:func:`stale_copy_rule`): keep a served stale value as a plain local copy
  for :data:`~stratacache.freshness.STALE_COPY_SECONDS`.
* **Manage** (``f.get``, ``f.set``, ``f.refresh``): :func:`peek_rule` answers a live value,
  fresh or stale (never a copy kept for fail-safe only, never an envelope); :func:`set_rule`
  keeps a given value's envelope as a computation's would be; a refresh is
  :func:`compute_rule`.
"""

from __future__ import annotations

import math
from typing import Any

from stratacache.backend import NO_VALUE
from stratacache.coherence import InvalidationReceiver, epoch_of, suspected, unchanged_since
from stratacache.driver import RUN, Rule
from stratacache.engine import keep_rule
from stratacache.errors import CacheError
from stratacache.freshness import (
    STALE_COPY_SECONDS,
    Envelope,
    Freshness,
    State,
    clock,
    companion_key,
)
from stratacache.guard import WriteGuard
from stratacache.recovery import Recovery, failed_write, failures
from stratacache.route import Route
from stratacache.tier import Tier, bounded

__all__ = [
    "answer_rule",
    "compute_rule",
    "coordinated_rule",
    "peek_rule",
    "read_rule",
    "refresh_rule",
    "set_rule",
    "stale_copy_rule",
    "store_rule",
]


def envelope_key(tier: Tier, key: str) -> str:
    """Where ``tier`` keeps the envelope of ``key``."""
    return companion_key(key) if tier.cache.in_process else key


def read_rule(route: Route, policy: Freshness, key: str, since: int) -> Rule[Envelope | None]:
    """Return the best envelope of ``key`` in the route's tiers (``None``: none alive).

    The first tier's plain value was read by the caller and missed (counted here). The
    envelope fills the tiers above the one it came from, unless a change reached this
    process while it was on its way up: since ``since``, the channel's epoch (``epoch_of``)
    taken before the read.
    """
    counts = route.counts
    receiver = route.receiver
    best, best_index, remaining = yield from _best_rule(route, policy, key, receiver)
    if best is None:
        counts.misses += 1
        return None
    if best_index:
        counts.shared_hits += 1
    else:
        counts.local_hits += 1
    if unchanged_since(receiver, since):
        yield from store_rule(route, policy, key, best, best_index, remaining=remaining)
    return best


def _best_rule(
    route: Route, policy: Freshness, key: str, receiver: InvalidationReceiver | None
) -> Rule[tuple[Envelope | None, int, float | None]]:
    """The freshest live envelope in the route's tiers, its tier's index and remaining life.

    It stops at the first fresh one; each tier's hit or miss is counted.
    """
    tiers, group = route.tiers, route.group
    if tiers[0].cache.in_process:
        tiers[0].stats.misses += 1
    best: Envelope | None = None
    best_index, best_remaining = -1, None
    now = clock()
    for index, tier in enumerate(tiers):
        try:
            data, remaining = yield (tier, "lookup_entry", (envelope_key(tier, key), group))
        except CacheError:
            if not policy.fail_safe:
                raise
            route.counts.errors += 1  # the fail-safe window answers for a tier that is down
            continue
        entry = None if data is NO_VALUE else Envelope.read(data)
        if entry is not None and tier.cache.in_process:  # kept through a channel loss?
            entry = suspected(receiver, entry)
        state = State.DEAD if entry is None else policy.state(entry, now)
        if entry is None or state is State.DEAD:
            if index or not tier.cache.in_process:
                tier.stats.misses += 1
            continue
        tier.stats.hits += 1
        if best is None or entry.soft > best.soft:
            best, best_index, best_remaining = entry, index, remaining
        if state is State.FRESH:
            break
    return best, best_index, best_remaining


def answer_rule(
    route: Route, policy: Freshness, key: str, since: int
) -> Rule[tuple[Envelope | None, State]]:
    """Read the envelope of ``key`` (:func:`read_rule`) and tell what it is worth now.

    A stale one is served: counted, and kept as a short plain local copy
    (:func:`stale_copy_rule`); the caller then asks for its refresh. ``since`` is the
    channel's epoch taken before the read.
    """
    entry = yield from read_rule(route, policy, key, since)
    if entry is None:
        return None, State.DEAD
    state = policy.state(entry, clock())
    if state is State.STALE:
        route.counts.stale_served += 1
        yield from stale_copy_rule(route, key, entry, since)
    return entry, state


def store_rule(
    route: Route,
    policy: Freshness,
    key: str,
    entry: Envelope,
    below: int,
    *,
    remaining: float | None = None,
) -> Rule[bool]:
    """Keep ``entry`` in the tiers above index ``below``, deepest first.

    ``remaining`` is what the tier ``below`` said the entry has left (``None``: unknown).
    Returns whether the deepest of them kept it.
    """
    tiers, timeouts = route.tiers, route.timeouts
    now = clock()
    life = entry.hard + policy.fail_safe - now
    if remaining is not None and not math.isinf(remaining):
        life = min(life, remaining)
    if life <= 0:
        return False
    fresh_for = min(entry.soft - now, life)
    stored = entry.stored()
    last = len(tiers) - 1
    outage: Recovery | None = None
    deepest_kept = False
    for index in range(below - 1, -1, -1):
        tier = tiers[index]
        writes: list[tuple[str, Any, float]]
        if tier.cache.in_process:
            writes = [(companion_key(key), stored, life)]
            if fresh_for > 0:
                writes.append((key, entry.value, bounded(fresh_for, timeouts[index])))
        else:
            writes = [(key, stored, life if index == last else bounded(life, tier.cap))]
        mark, kept = failures(tier), True
        for name, data, seconds in writes:
            kept = (yield from keep_rule(route, tier, name, data, seconds)) and kept
        if index == below - 1:
            deepest_kept = kept
        if index:
            outage = failed_write(tier, mark, kept) or outage
    if outage is not None:  # the tiers above hold what its store missed (see the engine)
        outage.recheck(key, route.group)
    return deepest_kept


def deepest_rule(route: Route, key: str) -> Rule[tuple[Envelope | None, float | None, bool]]:
    """Read the deepest tier's envelope of ``key``.

    Returns it (``None``: none), its remaining life, and whether it may fill the tiers
    above: no change reached this process while it was on its way up.
    """
    deepest = route.tiers[-1]
    receiver = route.receiver
    since = epoch_of(receiver)
    data, remaining = yield (deepest, "lookup_entry", (envelope_key(deepest, key), route.group))
    entry = None if data is NO_VALUE else Envelope.read(data)
    return entry, remaining, unchanged_since(receiver, since)


def peek_rule(route: Route, key: str) -> Rule[Any]:
    """The value ``f.get()`` answers: as a call reads it, top-down, else ``NO_VALUE``.

    The first fresh envelope's value, else the freshest stale one's (before its hard
    expiry); a copy kept for fail-safe only is not a cached result. Nothing is counted or
    filled.
    """
    receiver = route.receiver
    now = clock()
    best: Envelope | None = None
    for tier in route.tiers:
        data, _ = yield (tier, "lookup_entry", (envelope_key(tier, key), route.group))
        entry = None if data is NO_VALUE else Envelope.read(data)
        if entry is not None and tier.cache.in_process:
            entry = suspected(receiver, entry)
        if entry is None or now >= entry.hard:
            continue
        if now < entry.soft:
            return entry.value
        if best is None or entry.soft > best.soft:
            best = entry
    return NO_VALUE if best is None else best.value


def set_rule(route: Route, policy: Freshness, key: str, value: Any) -> Rule[bool]:
    """Keep ``value`` (``f.set``) in every tier as if computed now; whether the deepest kept it."""
    now = clock()
    entry = policy.envelope(value, route.timeouts[-1], now, now)
    return (yield from store_rule(route, policy, key, entry, len(route.tiers)))


def stale_copy_rule(route: Route, key: str, entry: Envelope, since: int) -> Rule[None]:
    """Keep a served stale value as a short plain copy in the route's in-process tiers.

    ``since`` is the channel's epoch taken before ``entry`` was read (``epoch_of``): a
    change that reached the process since then leaves no copy.
    """
    if not unchanged_since(route.receiver, since):
        return
    for tier in route.tiers:
        if tier.cache.in_process:
            yield from keep_rule(route, tier, key, entry.value, STALE_COPY_SECONDS)


def compute_rule(
    route: Route, policy: Freshness, key: str, guard: WriteGuard | None = None
) -> Rule[Any]:
    """Run the function, keep its value's envelope in every tier, return the value.

    A value whose key was invalidated while it was computed, or that ``cache_if`` refuses,
    is returned, not kept.
    """
    stamp = guard.begin(key) if guard is not None else (0, 0)
    started = clock()
    try:
        value = yield (None, RUN, ())
    finally:
        kept = guard.end(key, stamp) if guard is not None else True
    if kept and route.kept(value):
        entry = policy.envelope(value, route.timeouts[-1], started, clock())
        yield from store_rule(route, policy, key, entry, len(route.tiers))
    return value


HOLDER_POLLS = (0.01, 0.02, 0.05, 0.1, 0.2)
"""Seconds between a waiting caller's reads of the deepest tier (the last one repeats)."""

HOLDER_WAIT = 60.0
"""The longest a caller waits for another's computation before computing itself (the lock
expires before that: ``CACHE_ATOMIC_LOCK_TIMEOUT``, 30 s by default)."""


def coordinated_rule(
    route: Route, policy: Freshness, key: str, guard: WriteGuard | None = None
) -> Rule[Any]:
    """Compute ``key`` once across processes (``at_most_once``), else take the holder's value.

    The caller claims the deepest tier's refresh lease (a backend that does not coordinate
    processes lends it at once). While another caller holds it, this one polls the deepest
    tier for an unexpired envelope (its miss found none: it is the holder's), and takes it
    (counted in ``lock_waits``); once the lease is free (the holder finished, failed or died
    and its lock expired), it claims it in turn. Holding it, it reads the deepest tier once
    more (a value may have landed between the miss and the claim), then computes.
    """
    deepest, last = route.tiers[-1], len(route.tiers) - 1
    since, waited, polls = clock(), False, iter(HOLDER_POLLS)
    lease = yield (deepest, "acquire_refresh", (key,))
    while lease is None and clock() - since < HOLDER_WAIT:
        if not waited:
            waited = True
            route.counts.lock_waits += 1
        yield (deepest, "pause", (next(polls, HOLDER_POLLS[-1]),))
        entry, remaining, fills = yield from deepest_rule(route, key)
        if entry is not None and clock() < entry.hard:  # unexpired: the holder's value
            if fills:
                yield from store_rule(route, policy, key, entry, last, remaining=remaining)
            return entry.value
        lease = yield (deepest, "acquire_refresh", (key,))
    try:
        if lease and last:  # held: did a value land between the miss and the claim?
            entry, remaining, fills = yield from deepest_rule(route, key)
            if entry is not None and clock() < entry.hard:
                if fills:
                    yield from store_rule(route, policy, key, entry, last, remaining=remaining)
                return entry.value
        return (yield from compute_rule(route, policy, key, guard))
    finally:
        if lease:
            yield (deepest, "release_refresh", (key, lease))


def refresh_rule(
    route: Route, policy: Freshness, key: str, seen: Envelope, guard: WriteGuard | None = None
) -> Rule[bool]:
    """Refresh ``key`` (whose envelope ``seen`` went stale) once across processes.

    Returns whether this caller computed (False: another process holds the refresh, or
    finished it, and its newer value filled the tiers here).
    """
    deepest = route.tiers[-1]
    lease = yield (deepest, "acquire_refresh", (key,))
    if lease is None:
        return False
    try:
        entry, remaining, fills = yield from deepest_rule(route, key)
        if entry is not None and entry.created > seen.created:  # refreshed meanwhile
            if fills:
                last = len(route.tiers) - 1
                yield from store_rule(route, policy, key, entry, last, remaining=remaining)
            return False
        yield from compute_rule(route, policy, key, guard)
        return True
    finally:
        yield (deepest, "release_refresh", (key, lease))
