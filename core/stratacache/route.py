"""A route: the tiers one function (or the stack's own API) reads and writes, first to deepest.

The engine (:mod:`stratacache.engine`) walks routes; the stack builds them
(:meth:`CacheStack.route <stratacache.CacheStack.route>`), one per function and stack state.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stratacache.computation import NO_VALUE
from stratacache.errors import SerializationError
from stratacache.observe import observers
from stratacache.stats import FunctionStats
from stratacache.tier import Tier, bounded

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver
    from stratacache.stack import StackState

__all__ = ["UNCOUNTED", "Route"]

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
        observers: The ``stratacache_slow_path`` hook when a plugin implements it, else
            ``None`` (see :mod:`stratacache.observe`).
        keep: ``cached_for(cache_if=...)``: whether a computed value is written, or ``None``
            (every value is).
        tags: The tags the entries of this call carry (see :meth:`tagged`); ``()`` for none.
        debug: Whether the ``stratacache.engine`` logger logged DEBUG when the route was
            built: then reads log where a value came from (the first tier's read
            included), and a route built with DEBUG off pays nothing for it.
    """

    __slots__ = (
        "counting",
        "counts",
        "debug",
        "fills",
        "first",
        "group",
        "keep",
        "lookup",
        "observers",
        "on_unstorable",
        "state",
        "tags",
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
        keep: Callable[[Any], bool] | None = None,
    ) -> None:
        self.state = state
        # A tier that stores nothing (NullCache as LOCALCACHE_TYPE) only costs a miss and a
        # fill on every read: routes skip it, unless it is all there is.
        tiers = tuple(tier for tier in tiers if tier.cache.stores) or tiers[-1:]
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
        self.observers = observers()
        self.keep = keep
        self.tags: tuple[str, ...] = ()
        self.debug = logger.isEnabledFor(logging.DEBUG)
        if self.debug:
            self.lookup = _logged(self.lookup, first.name, group)

    @property
    def receiver(self) -> InvalidationReceiver | None:
        """The invalidation channel's receiver of the route's stack (``None``: no channel)."""
        state = self.state
        return None if state is None else state.coherence

    def kept(self, value: Any) -> bool:
        """Whether a computed ``value`` is written: ``cache_if`` says so (counted when not)."""
        keep = self.keep
        if keep is None or keep(value):
            return True
        self.counts.not_cached += 1
        return False

    def tagged(self, tags: tuple[str, ...]) -> Route:
        """Return this route for one call whose entries carry ``tags``."""
        if not tags:
            return self
        route = copy.copy(self)
        route.tags = tags
        return route

    def __repr__(self) -> str:
        names = " > ".join(t.name for t in self.tiers)
        return f"<Route {self.group or '(stack)'}: {names}>"


def _warn_unstorable(exc: SerializationError) -> None:
    logger.warning("value not cached in a tier, it cannot be serialized: %s", exc)


def _logged(lookup: Callable[[str], Any], tier: str, group: str | None) -> Callable[[str], Any]:
    def logged(key: str) -> Any:
        value = lookup(key)
        logger.debug(
            "%s %s in tier %r (%s)", "miss" if value is NO_VALUE else "hit", key, tier, group
        )
        return value

    return logged
