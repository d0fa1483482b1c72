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
import math
import numbers
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast, get_args

from stratacache.asynccall import AsyncCachedCall, make_async_wrapper
from stratacache.backend import NO_VALUE
from stratacache.cachedfunction import (
    AsyncCachedFunction,
    BoundCachedFunction,
    CachedFunction,
    CachedMethod,
    Decorator,
)
from stratacache.call import AtomicWrites, CachedCall
from stratacache.calloptions import CallOptions
from stratacache.freshness import freshness_options
from stratacache.keyoptions import KeyOptions
from stratacache.stack import CacheStack

__all__ = [
    "AsyncCachedFunction",
    "AtomicWrites",
    "BoundCachedFunction",
    "CachedFunction",
    "cached_for",
]

P = ParamSpec("P")
R = TypeVar("R")


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
    refresh_after: float | None = None,
    stale_after: float | timedelta | None = None,
    fail_safe: float | timedelta | None = None,
    soft_timeout: float | None = None,
    hard_timeout: float | None = None,
    early_refresh: float = 0,
    key: str | Callable[..., str] | None = None,
    ignore: Sequence[str] | None = None,
    version: str | int | None = None,
    key_self: Callable[[Any], Any] | None = None,
    unless: Callable[..., Any] | None = None,
    cache_if: Callable[[Any], Any] | None = None,
    tags: Sequence[str] | None = None,
) -> Decorator:
    """Cache the results of the decorated function for the given duration.

    On an ``async def``, it returns a coroutine function with the same options and methods;
    those that do I/O are coroutines there (``await f.invalidate(...)``,
    ``await f.clear_cache()``), while ``f.cache_key(...)`` and ``f.uncached`` stay plain.
    A hit in an in-process tier is served without an ``await`` or a thread; a Redis tier is
    awaited on ``redis.asyncio``; any other tier that talks to a store (a backend with
    ``api = "sync"``: files, a third-party one) runs in a worker thread, so the event loop
    never blocks on it.

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
        refresh_after: A fraction of the duration (e.g. 0.8) after which an entry is stale:
            a caller then gets it at once, and one background refresh runs (see the page
            "Keeping values fresh and available").
        stale_after: The same as a time after the computation (seconds or a timedelta).
        fail_safe: How long past its expiry a value is kept to answer for a computation
            that raises (seconds or a timedelta); logged and counted when it does.
        soft_timeout: Seconds to wait for a computation when a stale value exists; then
            that value is the answer and the computation finishes in the background.
        hard_timeout: Seconds to wait for a computation at most; then
            :class:`~stratacache.ComputeTimeout` (or the fail-safe value), and the
            computation finishes in the background and stores its result.
        early_refresh: XFetch's beta (Vattani et al., VLDB 2015), 0 to turn it off: a fresh
            entry is refreshed a little early, at random, the earlier the longer its
            computation took, so hot keys do not all refresh at once.
        key: The argument part of the key: a :meth:`str.format` template over the
            arguments (``"{user_id}:{lang}"``, ``"{user.id}"``), or a callable taking the
            parameters it names and returning a string. The function's name (its Redis
            Cluster hash tag) and the backend's prefix stay.
        ignore: Parameters left out of the key (a db session, a logger).
        version: Part of every key: bumping it retires the old entries without a clear.
        key_self: For a method, how its instance enters the key
            (``key_self=lambda self: self.id``), in place of its ``__cache_key__()``,
            ``__caching_id__`` or ``repr``.
        unless: A callable taking the parameters it names; when it returns true the call
            bypasses the cache (no read, no write).
        cache_if: A predicate on the result; when false the result is not stored
            (``cache_if=lambda r: r is not None``).
        tags: Tag templates over the arguments (``["user:{user_id}"]``): every entry
            carries its tags, and :func:`stratacache.invalidate_tags` removes them.

    Raises:
        ValueError: An invalid combination of options or a negative duration; a template
            field, an ``ignore`` name or a parameter of ``unless``/``key`` that the
            function lacks; a ``key`` template naming no argument.
        TypeError: Applied to something that is not a function or a coroutine function
            (an async generator, a ``classmethod`` object).

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
    _check_tiers(tiers, local_ram_cache_only or no_serialization)
    key_options = KeyOptions.checked(key=key, ignore=ignore, version=version, key_self=key_self)
    fresh = freshness_options(
        refresh_after=refresh_after,
        stale_after=stale_after,
        fail_safe=fail_safe,
        soft_timeout=soft_timeout,
        hard_timeout=hard_timeout,
        early_refresh=early_refresh,
        atomic=atomic_writes,
    )

    def decorate(func: Callable[..., Any]) -> Any:
        if isinstance(func, classmethod | staticmethod):
            raise TypeError(
                f"cached_for cannot wrap a {type(func).__name__} object; put @cached_for"
                f" below @{type(func).__name__} so it wraps the function itself"
            )
        if inspect.isasyncgenfunction(func):
            raise TypeError(
                f"cached_for cannot cache an async generator ({func.__qualname__}): its"
                " values arrive over time; cache a coroutine that collects them instead"
            )
        if not callable(func):
            raise TypeError(f"cached_for decorates functions, not {func!r}")
        options: dict[str, Any] = {
            "stack": stack or _default_stack(),
            "timeout": None if total == 0 else max(1, int(-(-total // 1))),
            "local_only": local_ram_cache_only,
            "by_reference": no_serialization,
            "tiers": tuple(tiers) if tiers is not None else None,
            "atomic": atomic_writes,
            "fresh": fresh,
            "key_options": key_options if key_options.customized else None,
            "call_options": CallOptions.checked(
                func, unless=unless, cache_if=cache_if, tags=tags, atomic=atomic_writes
            ),
        }
        call: CachedCall[Any, Any]
        wrapper: Any
        if inspect.iscoroutinefunction(func):
            call = async_call = AsyncCachedCall(func, **options)
            wrapper = make_async_wrapper(async_call)
        else:
            call = CachedCall(func, **options)
            wrapper = _make_wrapper(call)
        call.stack._register(call)
        if next(iter(inspect.signature(func).parameters), None) == "self":
            wrapper = CachedMethod(wrapper, call)
        # A partial has no name of its own: the wrapper takes its function's.
        named = func.func if isinstance(func, functools.partial) else func
        functools.update_wrapper(wrapper, named)
        wrapper.__wrapped__ = func
        wrapper.uncached = func
        wrapper.invalidate = call.invalidate
        wrapper.clear_cache = call.clear_cache
        wrapper.cache_key = call.cache_key
        wrapper.refresh = call.refresh
        wrapper.get = call.get
        wrapper.set = call.set
        return wrapper

    return cast(Decorator, decorate)


def _check_tiers(tiers: Sequence[str] | None, selected: bool) -> None:
    if tiers is None:
        return
    if isinstance(tiers, str) or not all(isinstance(t, str) for t in tiers) or not tiers:
        raise TypeError(
            f"cached_for: tiers must be a non-empty list of tier names, got {tiers!r};"
            ' write e.g. tiers=["memory", "redis"]'
        )
    if selected:
        raise ValueError(
            "cached_for: give either tiers=... or local_ram_cache_only/no_serialization,"
            " which are selections of tiers themselves"
        )


def _make_wrapper(call: CachedCall[P, R]) -> Callable[P, R]:
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
            route.counts.local_hits += 1  # UNCOUNTED (never read) when the stack does not count
            return value  # type: ignore[no-any-return]
        return miss(route, key, args, kwargs)

    skip = call.options.unless
    if skip is None:
        return wrapper
    cached, bypassed = wrapper, call.bypassed

    def unless_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if skip(args, kwargs):
            return bypassed(args, kwargs)
        return cached(*args, **kwargs)

    return unless_wrapper
