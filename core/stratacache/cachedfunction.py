"""What ``cached_for`` returns: the typed protocols, and the binding of cached methods."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from stratacache.computation import NoValue

__all__ = [
    "AsyncBoundCachedFunction",
    "AsyncCachedFunction",
    "BoundCachedFunction",
    "CachedFunction",
    "CachedMethod",
    "Decorator",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)


class BoundCachedFunction(Protocol[R_co]):
    """A cached method bound to an instance (``obj.method``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> R_co:
        """Return the cached result of the call."""

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry of one call (pass ``self`` too) from every layer."""

    def clear_cache(self) -> int:
        """Delete every entry of the function from every layer."""

    def refresh(self, *args: Any, **kwargs: Any) -> R_co:
        """Recompute this call (for this instance), store and return its result."""

    def get(self, *args: Any, **kwargs: Any) -> R_co | NoValue:
        """Return the cached result of this call (for this instance), or ``NO_VALUE``."""

    def set(self, value: Any, /, *args: Any, **kwargs: Any) -> bool:
        """Store ``value`` as the result of this call (for this instance)."""


class CachedFunction(Protocol[P, R]):
    """What ``cached_for`` returns: the function, cached, with methods to manage its entries.

    Attributes:
        uncached: The original function, called directly (``__wrapped__`` too).
    """

    uncached: Callable[P, R]
    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached result of ``func(*args, **kwargs)``, computing it on a miss."""

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of this call from every layer; True if some layer held it."""

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the key this call is stored under (before a backend's own prefix)."""

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function for this call, store its result in every layer, return it."""

    def get(self, *args: P.args, **kwargs: P.kwargs) -> R | NoValue:
        """Return the cached result of this call, or ``NO_VALUE`` on a miss (no computation)."""

    def set(self, value: R, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Store ``value`` as the result of this call in every layer.

        Returns whether the deepest layer stored it. A computation of the same call running
        now does not overwrite it.
        """

    def clear_cache(self) -> int:
        """Delete every entry of the function from every layer; return how many went.

        The entries are found through the key tracking each write records, not by scanning.
        """

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> CachedFunction[P, R]: ...
    @overload
    def __get__(
        self, instance: object, owner: type[Any] | None = None
    ) -> BoundCachedFunction[R]: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Any:
        """Bind like a function, so methods can be cached."""


class AsyncCachedFunction(Protocol[P, R]):
    """What ``cached_for`` returns for an ``async def``: a coroutine function, cached.

    Its management methods that do I/O are coroutines; ``cache_key`` and ``uncached`` are
    plain, as for a synchronous function.
    """

    uncached: Callable[P, Coroutine[Any, Any, R]]
    __wrapped__: Callable[P, Coroutine[Any, Any, R]]

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached result of ``await func(*args, **kwargs)``."""

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of this call from every layer; True if some layer held it."""

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the key this call is stored under (before a backend's own prefix)."""

    async def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await the function for this call, store its result in every layer, return it."""

    async def get(self, *args: P.args, **kwargs: P.kwargs) -> R | NoValue:
        """Return the cached result of this call, or ``NO_VALUE`` on a miss."""

    async def set(self, value: R, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Store ``value`` as the result of this call in every layer."""

    async def clear_cache(self) -> int:
        """Delete every entry of the function from every layer; return how many went."""

    @overload
    def __get__(
        self, instance: None, owner: type[Any] | None = None
    ) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __get__(
        self, instance: object, owner: type[Any] | None = None
    ) -> AsyncBoundCachedFunction[R]: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Any:
        """Bind like a function, so methods can be cached."""


class AsyncBoundCachedFunction(Protocol[R_co]):
    """A cached ``async def`` method bound to an instance (``obj.method``)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> R_co:
        """Return the cached result of the call."""

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry of one call (for this instance) from every layer."""

    async def clear_cache(self) -> int:
        """Delete every entry of the method from every layer."""

    async def refresh(self, *args: Any, **kwargs: Any) -> R_co:
        """Recompute this call (for this instance), store and return its result."""

    async def get(self, *args: Any, **kwargs: Any) -> R_co | NoValue:
        """Return the cached result of this call (for this instance), or ``NO_VALUE``."""

    async def set(self, value: Any, /, *args: Any, **kwargs: Any) -> bool:
        """Store ``value`` as the result of this call (for this instance)."""


class Decorator(Protocol):
    """What ``cached_for(...)`` returns: it caches a function, or a coroutine function."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, T]], /
    ) -> AsyncCachedFunction[P, T]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...
    def __call__(self, func: Callable[..., Any], /) -> Any:
        """Return the cached form of ``func``."""


class _Managed(Protocol):
    """The management methods of one decorated function (its ``_CachedCall``)."""

    def invalidate(self, *args: Any, **kwargs: Any) -> bool: ...
    def cache_key(self, *args: Any, **kwargs: Any) -> str: ...
    def clear_cache(self) -> int: ...
    def refresh(self, *args: Any, **kwargs: Any) -> Any: ...
    def get(self, *args: Any, **kwargs: Any) -> Any: ...
    def set(self, value: Any, /, *args: Any, **kwargs: Any) -> Any: ...


class _BoundCachedMethod(functools.partial[Any]):
    """A cached method bound to its instance.

    Calls, ``invalidate`` and ``cache_key`` pass ``self``. It is a C-level partial, so a bound
    call costs little more than a plain one.
    """

    _call: _Managed

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete this call's entry (for this instance) from every layer."""
        return self._call.invalidate(*self.args, *args, **kwargs)

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """Return the key of this call (for this instance)."""
        return self._call.cache_key(*self.args, *args, **kwargs)

    def clear_cache(self) -> int:
        """Delete every entry of the method, for every instance, from every layer."""
        return self._call.clear_cache()

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute this call (for this instance) and store its result."""
        return self._call.refresh(*self.args, *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """Return the cached result of this call (for this instance), or ``NO_VALUE``."""
        return self._call.get(*self.args, *args, **kwargs)

    def set(self, value: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Store ``value`` as the result of this call (for this instance)."""
        return self._call.set(value, *self.args, *args, **kwargs)


class CachedMethod:
    """The cached form of a method (first parameter ``self``).

    It binds like a function, and its bound form binds ``invalidate`` and ``cache_key`` to the
    instance too, so ``obj.method.invalidate(x)`` deletes the entry of ``obj.method(x)``.
    """

    def __init__(self, wrapper: Callable[..., Any], call: Any) -> None:
        self._wrapper = wrapper
        self._bound = type("BoundCachedMethod", (_BoundCachedMethod,), {"_call": call})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the cached function (through the class: ``Class.method(obj, x)``)."""
        return self._wrapper(*args, **kwargs)

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        return self._bound(self._wrapper, instance)
