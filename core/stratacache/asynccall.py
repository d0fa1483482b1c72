"""``cached_for`` on an ``async def``: the same route, keys and rules, awaited.

An :class:`AsyncCachedCall` is a :class:`~stratacache.call.CachedCall` whose slow paths are
coroutines. The hot path reads the first tier directly when it is in-process (a local hit
costs no ``await`` and no thread); every other tier operation goes through the engine's
rules, run by :func:`~stratacache.driver.adrive`, which awaits a tier whose backend serves
async code (Redis) and runs any other tier that talks to a store in a worker thread.
Concurrent awaiters of one key in one event loop share one computation
(:class:`~stratacache.asyncflight.AsyncFlights`), with or without ``atomic_writes``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from stratacache import bypassing, engine, freshrules
from stratacache.asyncflight import AsyncFlights
from stratacache.backend import NO_VALUE
from stratacache.call import CachedCall
from stratacache.driver import adrive
from stratacache.engine import Route
from stratacache.errors import CacheError
from stratacache.observe import aobserved_miss, aobserved_run
from stratacache.stats import FunctionStats

__all__ = ["AsyncCachedCall", "make_async_wrapper"]

logger = logging.getLogger("stratacache.decorator")

T = TypeVar("T")


class AsyncCachedCall(CachedCall[Any, Any]):
    """The state and slow paths of one decorated ``async def``."""

    def __init__(self, func: Callable[..., Any], **options: Any) -> None:
        super().__init__(func, **options)
        self.async_flights = AsyncFlights()

    is_async = True
    """Read by the stack, which warns when async functions reach tiers through threads."""

    @aobserved_miss
    async def amiss(self, route: Route, key: str, args: Any, kwargs: Any, *, read: bool) -> Any:
        """Continue after a miss (``read``: the first tier was read too), then compute.

        A caller reads the tiers below by itself, with no task of its own: a shared hit
        costs one round trip and no more. The concurrent awaiters of a key that every tier
        misses share one flight, and one computation.
        """
        if route is bypassing.BYPASSED:
            return await self.abypassed(args, kwargs)
        if self.tags is not None:
            route = route.tagged(self.tags.render(args, kwargs))
        if self.fresh is not None:
            return await self.fresh.amiss(route, key, args, kwargs)
        counts = route.counts
        try:
            if read:
                engine.first_counted(route, NO_VALUE)
                value = await adrive(engine.below_rule(route, key, counted=True))
            else:  # the first tier talks to a store too: the whole read in the driver
                value = await adrive(engine.read_rule(route, key))
            if value is not NO_VALUE:
                return value
            first = route.first

            def in_memory() -> Any:  # the first tier, when it costs no await
                return first.lookup(key, self.group) if first.cache.in_process else NO_VALUE

            async def lead() -> Any:
                # Another flight may have finished since our miss, as in the sync leader: every
                # tier, not the first alone (a channel's flush may have dropped its copy there).
                found = await adrive(engine.peek_rule(route, key))
                if found is not NO_VALUE:
                    return found
                run = aobserved_run(route, key, functools.partial(self._arun, counts, args, kwargs))
                return await adrive(engine.compute_rule(route, key, self.atomic, self.guard), run)

            def on_wait() -> None:
                counts.lock_waits += 1

            # A waiter reads its own copy from a first tier in memory, once the flight is done.
            return await self.async_flights.run(key, lead, in_memory, on_wait)
        except CacheError:
            counts.errors += 1
            raise

    async def _arun(self, counts: FunctionStats, args: Any, kwargs: Any) -> Any:
        """Await the function; count the run and its time."""
        if counts is engine.UNCOUNTED:
            return await self.func(*args, **kwargs)
        start = time.perf_counter()
        try:
            return await self.func(*args, **kwargs)
        except BaseException:
            counts.compute_errors += 1
            raise
        finally:
            counts.computations += 1
            counts.compute_seconds += time.perf_counter() - start

    async def abypassed(self, args: Any, kwargs: Any) -> Any:
        """Await the function with no tier read or written (``unless=``, ``bypass()``)."""
        self._current().counts.bypasses += 1
        return await self.func(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Await the function for this call, store its result in every tier, return it."""
        if bypassing.active():
            return await self.abypassed(args, kwargs)
        route = self._tagged(args, kwargs)
        route.counts.manual_refreshes += 1
        key = self.keys(args, kwargs)
        run = functools.partial(self._arun, route.counts, args, kwargs)
        if self.fresh is not None:  # an envelope, as the function's reads expect
            rule = freshrules.compute_rule(route, self.fresh.policy, key, self.guard)
            return await adrive(rule, run)
        return await adrive(engine.compute_rule(route, key, None, self.guard), run)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        """Return the cached result of this call, or ``NO_VALUE``; never runs the function."""
        if bypassing.active():
            return NO_VALUE
        route, key = self._current(), self.keys(args, kwargs)
        if self.fresh is not None:
            return await adrive(freshrules.peek_rule(route, key))
        return await adrive(engine.peek_rule(route, key))

    async def set(self, value: Any, /, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        """Store ``value`` as the result of this call in every tier (see ``CachedCall.set``)."""
        if bypassing.active():
            return False
        route = self._tagged(args, kwargs)
        key = self.keys(args, kwargs)
        self.guard.invalidate(key)
        if self.fresh is not None:
            return await adrive(freshrules.set_rule(route, self.fresh.policy, key, value))
        return await adrive(engine.write_rule(route, key, value))

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        """Delete this call's entry from every tier; a running computation keeps it."""
        route = self._current()
        key = self.keys(args, kwargs)
        self.guard.invalidate(key)  # a computation running now must not write it back
        removed = await adrive(engine.remove_rule(self.stack._layers().every, key, self.group))
        route.counts.deletes += removed
        return removed > 0

    async def clear_cache(self) -> int:  # type: ignore[override]
        """Delete every entry of the function from every tier."""
        route = self._current()
        self.guard.invalidate_all()
        removed = await adrive(engine.clear_group_rule(self.stack._layers().every, self.group))
        route.counts.deletes += removed
        return removed


def make_async_wrapper(call: AsyncCachedCall) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine function ``cached_for`` returns for an ``async def``."""
    stack, make_key, amiss, reroute = call.stack, call.keys.build, call.amiss, call.reroute
    enveloped = call.fresh is not None  # a first tier outside the process holds envelopes

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        route = call.route
        if route.state is not stack._state:
            route = reroute()
        key = make_key(args, kwargs)
        first = route.first
        if not first.cache.in_process:
            if not first.native_async or enveloped:  # the whole read in the driver
                return await amiss(route, key, args, kwargs, read=False)
            value = await first.alookup(key, route.group)  # a shared hit: one await, no rule
            if value is not NO_VALUE:
                engine.first_counted(route, value)
                return value
            return await amiss(route, key, args, kwargs, read=True)
        value = route.lookup(key)  # in memory: no await, no thread
        if value is not NO_VALUE:
            route.counts.local_hits += 1  # UNCOUNTED (never read) when the stack does not count
            return value
        return await amiss(route, key, args, kwargs, read=True)

    skip = call.options.unless
    if skip is None:
        return wrapper
    cached, abypassed = wrapper, call.abypassed

    async def unless_wrapper(*args: Any, **kwargs: Any) -> Any:
        if skip(args, kwargs):
            return await abypassed(args, kwargs)
        return await cached(*args, **kwargs)

    return unless_wrapper
