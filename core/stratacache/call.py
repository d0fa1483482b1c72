"""One decorated function's state and slow paths: its route, keys, flights and management.

``cached_for`` (:mod:`stratacache.decorator`) builds one :class:`CachedCall` per function and
compiles its hot path around it; every rule of reading, filling and writing is the engine's.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast

from stratacache import bypassing, engine, freshrules
from stratacache.backend import NO_VALUE
from stratacache.calloptions import CallOptions
from stratacache.driver import drive
from stratacache.engine import Route
from stratacache.errors import CacheError, SerializationError
from stratacache.freshcall import FreshPath
from stratacache.freshness import Freshness
from stratacache.guard import WriteGuard
from stratacache.keyoptions import KeyOptions
from stratacache.keys import KeyBuilder
from stratacache.observe import observed_miss, observed_run
from stratacache.singleflight import Flights
from stratacache.stack import CacheStack
from stratacache.stats import FunctionStats

__all__ = ["AtomicWrites", "CachedCall"]

logger = logging.getLogger("stratacache.decorator")

P = ParamSpec("P")
R = TypeVar("R")

AtomicWrites = Literal["at_most_once", "at_least_once"]
"""The coordination modes of ``atomic_writes``."""


class CachedCall(Generic[P, R]):
    """The state and slow paths of one decorated function; the hot path is a closure.

    ``route`` is the function's :class:`~stratacache.engine.Route` through the current
    stack state, rebuilt when the stack is reconfigured. Every rule of reading, filling and
    writing is the engine's; this class only picks the tiers and runs the function.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        stack: CacheStack,
        timeout: int | None,
        local_only: bool,
        by_reference: bool,
        tiers: tuple[str, ...] | None,
        atomic: AtomicWrites | None,
        key_options: KeyOptions | None = None,
        call_options: CallOptions | None = None,
        fresh: Freshness | None = None,
    ) -> None:
        self.func = func
        self.stack = stack
        self.timeout = timeout
        self.local_only = local_only
        self.by_reference = by_reference
        self.tier_names = tiers
        self.atomic = atomic
        self.keys = KeyBuilder(func, options=key_options)
        self.group = self.keys.name
        self.options = call_options or CallOptions()
        self.tags = self.options.tags
        self.route: Route = _UNROUTED
        self.flights = Flights()
        self.guard = WriteGuard()
        self._warned = False
        self._warned_atomic = False
        self.fresh = None if fresh is None else FreshPath(self, fresh)
        bypassing.register(self)

    def _install(self, route: Route) -> None:
        self.route = route

    def reroute(self) -> Route:
        """Return the route of a call: the stack's current state (configuring it if needed).

        Inside :func:`stratacache.bypass`, :data:`~stratacache.bypassing.BYPASSED`.
        """
        return cast(Route, bypassing.route_or_bypass(self._build_route, self._install))

    def _build_route(self) -> Route:
        state = self.stack._layers()
        if self.tier_names is not None:
            tiers = state.select(self.tier_names, f"cached_for({self.group})")
        elif self.by_reference:
            tiers = (state.by_reference,)
        elif self.local_only:
            tiers = state.in_process_tiers(f"cached_for({self.group})")
        else:
            tiers = state.chain
        settings = state.settings
        timeout = self.timeout if self.timeout is not None else settings.cache_default_timeout
        counts = self.stack._stats.function(self.group, tiers[0].name)
        route = Route(
            state,
            tiers,
            timeout,
            self.group,
            counts,
            on_unstorable=self._warn_unstorable,
            keep=self.options.cache_if,
        )
        if self.fresh is not None:
            self.fresh.adapt(route)
        return route

    @observed_miss
    def miss(self, route: Route, key: str, args: Any, kwargs: Any) -> R:
        """Continue after a miss in the first tier: the tiers below, then the function."""
        if route is bypassing.BYPASSED:
            return self.bypassed(args, kwargs)
        if self.tags is not None:
            route = route.tagged(self.tags.render(args, kwargs))
        if self.fresh is not None:
            return cast(R, self.fresh.miss(route, key, args, kwargs))
        route.first.stats.misses += 1
        counts = route.counts
        try:
            value = engine.read_below(route, key)
            if value is not NO_VALUE:
                return cast(R, value)
            if self.atomic is None:
                run = observed_run(route, key, functools.partial(self._run, counts, args, kwargs))
                return cast(R, engine.compute(route, key, run, guard=self.guard))
            return self._single_flight(route, key, args, kwargs)
        except CacheError:
            counts.errors += 1
            raise

    def _run(self, counts: FunctionStats, args: Any, kwargs: Any) -> R:
        """Call the function; count the run and its time (a clock read only here)."""
        if counts is engine.UNCOUNTED:
            return self.func(*args, **kwargs)
        start = time.perf_counter()
        try:
            return self.func(*args, **kwargs)
        except BaseException:
            counts.compute_errors += 1
            raise
        finally:
            counts.computations += 1
            counts.compute_seconds += time.perf_counter() - start

    def _single_flight(self, route: Route, key: str, args: Any, kwargs: Any) -> R:
        counts = route.counts

        @functools.partial(observed_run, route, key)
        def run() -> R:
            return self._run(counts, args, kwargs)

        def lead() -> Any:
            value = engine.peek(route, key)  # a flight may have finished since our miss
            if value is not NO_VALUE:
                return value
            self._warn_uncoordinated(route)
            return engine.compute(route, key, run, self.atomic, self.guard)

        def on_wait() -> None:
            counts.lock_waits += 1

        return cast(
            R, self.flights.run(key, lead, lambda: route.first.lookup(key, self.group), on_wait)
        )

    def _warn_uncoordinated(self, route: Route) -> None:
        deepest = route.tiers[-1]
        backend = deepest.cache
        if backend.coordinates_processes or backend.in_process or self._warned_atomic:
            return
        self._warned_atomic = True
        fix = (
            'give it a backend that coordinates, e.g. {"type": "RedisCacheAtomic"} in CACHE_LAYERS'
            if route.state is not None and route.state.settings.cache_layers
            else "use CACHE_TYPE=RedisCacheAtomic"
        )
        logger.warning(
            "%s: atomic_writes=%r holds within this process only: its deepest tier %r (%s)"
            " does not coordinate processes; %s",
            self.group,
            self.atomic,
            deepest.name,
            type(backend).__name__,
            fix,
        )

    def _warn_unstorable(self, exc: SerializationError) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s: result not cached, it cannot be serialized (%s); the function will run"
                " on every call. Use no_serialization=True with local_ram_cache_only=True to"
                " keep it by reference.",
                self.group,
                exc,
            )

    def _current(self) -> Route:
        route = self.route
        if route.state is self.stack._state:
            return route
        return cast(
            Route, bypassing.route_or_bypass(self._build_route, self._install, honoured=False)
        )

    def _tagged(self, args: Any, kwargs: Any) -> Route:
        route = self._current()
        return route if self.tags is None else route.tagged(self.tags.render(args, kwargs))

    def bypassed(self, args: Any, kwargs: Any) -> R:
        """Call the function with no tier read or written (``unless=``, ``bypass()``)."""
        self._current().counts.bypasses += 1
        return self.func(*args, **kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> R:
        """Run the function for this call, store its result in every tier, return it.

        Inside :func:`stratacache.bypass`, get, set and refresh read and write no tier
        either: ``get`` misses, ``set`` stores nothing, ``refresh`` only runs the function.
        """
        if bypassing.active():
            return self.bypassed(args, kwargs)
        route = self._tagged(args, kwargs)
        route.counts.manual_refreshes += 1
        key = self.keys(args, kwargs)
        run = functools.partial(self._run, route.counts, args, kwargs)
        if self.fresh is not None:  # an envelope, as the function's reads expect
            rule = freshrules.compute_rule(route, self.fresh.policy, key, self.guard)
            return cast(R, drive(rule, run))
        return cast(R, engine.compute(route, key, run, guard=self.guard))

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """Return the cached result of this call, or ``NO_VALUE``; never runs the function."""
        if bypassing.active():
            return NO_VALUE
        if self.fresh is not None:
            return drive(freshrules.peek_rule(self._current(), self.keys(args, kwargs)))
        return engine.peek(self._current(), self.keys(args, kwargs))

    def set(self, value: Any, /, *args: Any, **kwargs: Any) -> bool:
        """Store ``value`` as the result of this call in every tier; whether the deepest took it.

        A computation of this call running now does not overwrite it.
        """
        if bypassing.active():
            return False
        route = self._tagged(args, kwargs)
        key = self.keys(args, kwargs)
        self.guard.invalidate(key)
        if self.fresh is not None:
            return drive(freshrules.set_rule(route, self.fresh.policy, key, value))
        return engine.write(route, key, value)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry of this call from every tier; a running computation keeps it."""
        route = self._current()
        key = self.keys(args, kwargs)
        self.guard.invalidate(key)  # a computation running now must not write it back
        removed = self.stack._remove_everywhere(key, self.group)
        route.counts.deletes += removed
        return removed > 0

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """Return the key of this call."""
        return self.keys(args, kwargs)

    def clear_cache(self) -> int:
        """Delete every entry of the function from every tier."""
        route = self._current()
        self.guard.invalidate_all()
        removed = self.stack.clear_group(self.group)
        route.counts.deletes += removed
        return removed


class _Unrouted:
    """The route of a function not called yet: its state is never the stack's."""

    state = object()


_UNROUTED = cast(Route, _Unrouted())
