"""``cached_for``: cache a function's results in the stack's tiers.

A call reads its tiers first to deepest (by default every tier that serializes: the seed's
local layer, then the shared one), then runs the function. The rules of reading, filling
and writing are the engine's (:mod:`stratacache.engine`); this module picks a function's
tiers, builds its keys and compiles its hot path: a first-tier hit is one key build and one
backend read, with no pluggy call.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, get_args

from stratacache import engine
from stratacache.backend import NO_VALUE
from stratacache.cachedfunction import BoundCachedFunction, CachedFunction, CachedMethod
from stratacache.engine import Route
from stratacache.errors import CacheError, SerializationError
from stratacache.guard import WriteGuard
from stratacache.keys import KeyBuilder
from stratacache.singleflight import Flights
from stratacache.stack import CacheStack
from stratacache.stats import FunctionStats

__all__ = ["AtomicWrites", "BoundCachedFunction", "CachedFunction", "cached_for"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

AtomicWrites = Literal["at_most_once", "at_least_once"]
"""The coordination modes of ``atomic_writes``."""


class _CachedCall(Generic[P, R]):
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
    ) -> None:
        self.func = func
        self.stack = stack
        self.timeout = timeout
        self.local_only = local_only
        self.by_reference = by_reference
        self.tier_names = tiers
        self.atomic = atomic
        self.keys = KeyBuilder(func)
        self.group = self.keys.name
        self.route: Route = _UNROUTED
        self.flights = Flights()
        self.guard = WriteGuard()
        self._warned = False
        self._warned_atomic = False

    def reroute(self) -> Route:
        """Build the route through the stack's current state (configuring it if needed)."""
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
            state, tiers, timeout, self.group, counts, on_unstorable=self._warn_unstorable
        )
        self.route = route
        return route

    def miss(self, route: Route, key: str, args: Any, kwargs: Any) -> R:
        """Continue after a miss in the first tier: the tiers below, then the function."""
        route.first.stats.misses += 1
        counts = route.counts
        try:
            value = engine.read_below(route, key)
            if value is not NO_VALUE:
                return cast(R, value)
            if self.atomic is None:
                run = functools.partial(self._run, counts, args, kwargs)
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
        return route if route.state is self.stack._state else self.reroute()

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        route = self._current()
        key = self.keys(args, kwargs)
        self.guard.invalidate(key)  # a computation running now must not write it back
        removed = self.stack._remove_everywhere(key, self.group)
        route.counts.deletes += removed
        return removed > 0

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        return self.keys(args, kwargs)

    def clear_cache(self) -> int:
        route = self._current()
        self.guard.invalidate_all()
        removed = self.stack.clear_group(self.group)
        route.counts.deletes += removed
        return removed


class _Unrouted:
    """The route of a function not called yet: its state is never the stack's."""

    state = object()


_UNROUTED = cast(Route, _Unrouted())


def _default_stack() -> CacheStack:
    from stratacache.default import cache

    return cache


def cached_for(
    func: Callable[..., Any] | None = None,
    /,
    *,
    days: float = 0,
    hours: float = 0,
    minutes: float = 0,
    seconds: float = 0,
    local_ram_cache_only: bool = False,
    no_serialization: bool = False,
    atomic_writes: AtomicWrites | None = None,
    tiers: Sequence[str] | None = None,
    stack: CacheStack | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache the results of the decorated function for the given duration.

    Args:
        func: Not accepted: it is there to explain ``@cached_for`` without parentheses.
        days: Part of the duration entries live; the four parts add up. No duration at
            all means ``CACHE_DEFAULT_TIMEOUT``.
        hours: Part of the duration.
        minutes: Part of the duration.
        seconds: Part of the duration (rounded up to a whole second).
        local_ram_cache_only: Keep entries in the local layer only, for the full duration;
            the shared layer is never touched.
        no_serialization: Keep the result object itself (no copy, no pickle) in
            ``local_cache_no_serializer``; requires ``local_ram_cache_only=True``.
        atomic_writes: ``"at_most_once"`` or ``"at_least_once"``. Within one process,
            concurrent callers missing the same key run the function once and share its
            result; backends that coordinate processes extend it across them.
        tiers: The names of the tiers to use, e.g. ``["memory", "redis"]`` (in stack order,
            first to deepest); by default every tier that serializes.
            ``local_ram_cache_only`` selects the in-process ones, ``no_serialization`` the
            by-reference tier. A name the stack lacks is an error when the stack is
            configured (or at the first call of a function decorated after it).
        stack: The layer stack to use (default: :data:`stratacache.cache`).

    Raises:
        ValueError: An invalid combination of options or a negative duration.
        TypeError: Applied to something that is not a plain function (an ``async def``,
            a ``classmethod`` object).

    A result of ``None`` is cached like any other; an exception is never cached.
    """
    if func is not None:
        raise TypeError(
            "cached_for takes its options by keyword and needs parentheses: write"
            " @cached_for(minutes=5) (or @cached_for() for CACHE_DEFAULT_TIMEOUT),"
            " not @cached_for"
        )
    parts: dict[str, object] = {
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds,
    }
    for name, part in parts.items():
        if isinstance(part, bool) or not isinstance(part, numbers.Real):
            raise TypeError(
                f"cached_for: {name} must be a number, got {part!r}; write e.g. {name}=5"
            )
    for name, flag in (
        ("local_ram_cache_only", local_ram_cache_only),
        ("no_serialization", no_serialization),
    ):
        if not isinstance(flag, bool):
            raise TypeError(f"cached_for: {name} must be True or False, got {flag!r}")
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    given = ", ".join(f"{name}={part}" for name, part in parts.items() if part)
    if not math.isfinite(total):
        raise ValueError(
            f"cached_for: the duration must be a finite number of seconds, got {total}"
            f" ({given}); give finite days, hours, minutes or seconds"
        )
    if total < 0:
        raise ValueError(
            f"cached_for: the duration must not be negative, got {total} seconds ({given});"
            " give days, hours, minutes and seconds >= 0 (none: CACHE_DEFAULT_TIMEOUT)"
        )
    if no_serialization and not local_ram_cache_only:
        raise ValueError(
            "cached_for: no_serialization=True keeps objects by reference in this process, so"
            " it requires local_ram_cache_only=True (objects cannot travel to the shared"
            " layer without serialization)"
        )
    if atomic_writes is not None and atomic_writes not in get_args(AtomicWrites):
        raise ValueError(
            f"cached_for: atomic_writes={atomic_writes!r} is not a mode; use None,"
            " 'at_most_once' or 'at_least_once'"
        )
    if tiers is not None:
        if isinstance(tiers, str) or not all(isinstance(t, str) for t in tiers) or not tiers:
            raise TypeError(
                f"cached_for: tiers must be a non-empty list of tier names, got {tiers!r};"
                ' write e.g. tiers=["memory", "redis"]'
            )
        if local_ram_cache_only or no_serialization:
            raise ValueError(
                "cached_for: give either tiers=... or local_ram_cache_only/no_serialization,"
                " which are selections of tiers themselves"
            )
    timeout = None if total == 0 else max(1, int(-(-total // 1)))

    def decorate(func: Callable[P, R]) -> CachedFunction[P, R]:
        if isinstance(func, classmethod | staticmethod):
            raise TypeError(
                f"cached_for cannot wrap a {type(func).__name__} object; put @cached_for"
                f" below @{type(func).__name__} so it wraps the function itself"
            )
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"cached_for does not support async functions yet ({func.__qualname__} is"
                " 'async def'); cache a synchronous helper instead"
            )
        if not callable(func):
            raise TypeError(f"cached_for decorates functions, not {func!r}")
        call = _CachedCall(
            func,
            stack=stack or _default_stack(),
            timeout=timeout,
            local_only=local_ram_cache_only,
            by_reference=no_serialization,
            tiers=tuple(tiers) if tiers is not None else None,
            atomic=atomic_writes,
        )
        call.stack._register(call)
        wrapper = _make_wrapper(call)
        if next(iter(inspect.signature(func).parameters), None) == "self":
            wrapper = CachedMethod(wrapper, call)
        # A partial has no name of its own: the wrapper takes its function's.
        named = func.func if isinstance(func, functools.partial) else func
        functools.update_wrapper(wrapper, named)
        wrapper.__wrapped__ = func  # type: ignore[attr-defined]
        wrapper.uncached = func  # type: ignore[attr-defined]
        wrapper.invalidate = call.invalidate  # type: ignore[attr-defined]
        wrapper.clear_cache = call.clear_cache  # type: ignore[attr-defined]
        wrapper.cache_key = call.cache_key  # type: ignore[attr-defined]
        return cast(CachedFunction[P, R], wrapper)

    return decorate


def _make_wrapper(call: _CachedCall[P, R]) -> Callable[P, R]:
    # The hot path: every name it needs is a local of this closure. A first-tier hit is
    # counted by one increment of the function's counters (the tier's hits derive from it).
    stack, make_key, miss, reroute = call.stack, call.keys.build, call.miss, call.reroute

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        route = call.route
        if route.state is not stack._state:
            route = reroute()
        key = make_key(args, kwargs)
        value = route.lookup(key)
        if value is not NO_VALUE:
            if route.counting:
                route.counts.local_hits += 1
            return value  # type: ignore[no-any-return]
        return miss(route, key, args, kwargs)

    return wrapper
