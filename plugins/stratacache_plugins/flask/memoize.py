"""Flask-Caching's memoized function, around a ``cached_for`` one (``def`` or ``async def``)."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar, cast

from stratacache import CachedFunction
from stratacache.asynccall import AsyncCachedCall
from stratacache.cachedfunction import CachedMethod
from stratacache.call import CachedCall
from stratacache_plugins.flask.calls import (
    bypass,
    join_generator,
    normalize_timeout,
    takes_arguments,
)
from stratacache_plugins.flask.stores import OwnerStore, aserve, serve

__all__ = ["memoized", "synchronous"]

P = ParamSpec("P")
R = TypeVar("R")

_BYPASS: Final = object()
"""What :func:`memoized`'s plan says when ``unless`` bypasses the cache."""


def _always(value: Any) -> bool:
    return True


def memoized(
    inner: CachedFunction[P, R],
    timeout: Any,
    owner: Any,
    overridden: bool,
    unless: Callable[..., Any] | None,
) -> CachedFunction[P, R]:
    """Flask-Caching's memoized function around a ``cached_for`` one.

    Args:
        inner: The ``cached_for`` function (its engine serves the calls); for an
            ``async def``, the coroutine function ``cached_for`` made of it.
        timeout: The decorator's timeout, ``cache_timeout`` until reassigned.
        owner: The ``Cache``: when its class overrides ``get`` or ``set`` (``overridden``),
            or they are patched on it, the calls go through them.
        overridden: Whether the class of ``owner`` overrides ``get`` or ``set``.
        unless: Bypass the cache when it returns ``True``.

    ``f.cache_timeout`` is read at every call (as Flask-Caching does); ``f.make_cache_key``
    returns the key of a call; ``f.delete_memoized(*args)`` is
    ``cache.delete_memoized(f, *args)``. The function of an ``async def`` is a coroutine
    function, served by the same plan, awaited.
    """
    call = cast(Any, inner.invalidate).__self__  # the _CachedCall: its timeout and route
    func = call.func
    is_async = inspect.iscoroutinefunction(func)
    call.func = functools.wraps(func)(_joined_async(func) if is_async else _joined(func))
    applied = [timeout]
    with_args = unless is not None and takes_arguments(unless)
    outer: Any = None  # what the decorator returns: its attributes are read at call time
    patched = owner.__dict__

    def plan(args: Any, kwargs: Any) -> Any:
        """``None`` (``inner`` serves it), ``_BYPASS``, or the owner's store."""
        if outer.cache_timeout is not applied[0]:
            _retime(call, outer.cache_timeout, applied)
        if unless is not None and bypass(unless, with_args, func, args, kwargs):
            return _BYPASS
        if not overridden and "get" not in patched and "set" not in patched:
            return None
        # Through get/set, None is a miss (Flask-Caching's cache_none).
        return OwnerStore(owner, outer.cache_timeout, call.group)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        how = plan(args, kwargs)
        if how is None:
            return inner(*args, **kwargs)
        if how is _BYPASS:
            return func(*args, **kwargs)
        return serve(how, call.cache_key(*args, **kwargs), lambda: func(*args, **kwargs), _always)

    async def awrapper(*args: Any, **kwargs: Any) -> Any:
        how = plan(args, kwargs)
        if how is None:
            return await inner(*args, **kwargs)  # type: ignore[misc]
        if how is _BYPASS:
            return await func(*args, **kwargs)
        key = call.cache_key(*args, **kwargs)
        return await aserve(how, key, lambda: func(*args, **kwargs), _always)

    def make_cache_key(*args: Any, **kwargs: Any) -> str:
        # Flask-Caching's takes the function first (f.make_cache_key(f.uncached, *args)).
        if args and (args[0] is func or args[0] is outer):
            args = args[1:]
        return cast(str, call.cache_key(*args, **kwargs))

    served = awrapper if is_async else wrapper
    outer = CachedMethod(served, call) if isinstance(inner, CachedMethod) else served
    functools.update_wrapper(outer, func)
    for name in ("uncached", "invalidate", "clear_cache", "cache_key"):
        setattr(outer, name, getattr(inner, name))
    outer.cache_timeout = timeout
    outer.make_cache_key = make_cache_key

    def delete_memoized(*args: Any, **kwargs: Any) -> None:
        # Flask-Caching's f.delete_memoized(*args): cache.delete_memoized(f, *args).
        owner.delete_memoized(outer, *args, **kwargs)

    outer.delete_memoized = delete_memoized
    return cast(CachedFunction[P, R], outer)


def synchronous(method: Callable[..., Any]) -> Callable[..., Any]:
    """The plain form of a cached function's ``invalidate`` or ``clear_cache``.

    ``cache.delete_memoized`` is synchronous, as in Flask-Caching, for an ``async def`` too:
    there the methods are coroutines (``await f.invalidate(...)``), and this returns the
    synchronous operation they run.
    """
    call = getattr(method, "__self__", None)
    if isinstance(call, AsyncCachedCall):
        return functools.partial(getattr(CachedCall, method.__name__), call)
    return method


def _joined(func: Callable[..., Any]) -> Callable[..., Any]:
    def joined(*args: Any, **kwargs: Any) -> Any:
        return join_generator(func(*args, **kwargs))

    return joined


def _joined_async(func: Callable[..., Any]) -> Callable[..., Any]:
    async def joined(*args: Any, **kwargs: Any) -> Any:
        return join_generator(await func(*args, **kwargs))

    return joined


def _retime(call: Any, timeout: Any, applied: list[Any]) -> None:
    seconds = normalize_timeout(timeout, f"memoize({call.group})")
    call.timeout = None if seconds is None else math.ceil(seconds)
    call.reroute()
    applied[0] = timeout
