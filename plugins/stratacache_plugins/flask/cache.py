"""The Flask ``Cache``: Flask-Caching's API over the stack's tiers and its engine."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

from flask import Flask, has_request_context, request

from stratacache import (
    NO_VALUE,
    CachedFunction,
    CacheSettings,
    CacheStack,
    SerializationError,
    Timeout,
    cached_for,
    engine,
)
from stratacache.engine import Route
from stratacache_plugins.flask.config import settings_from_config
from stratacache_plugins.flask.viewkeys import QueryArgs, view_key

__all__ = ["EXTENSION_NAME", "Cache", "CachedView", "QueryArgs", "init_app"]

logger = logging.getLogger("stratacache.flask")

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION_NAME: Final = "stratacache"
"""The key of the :class:`Cache` in ``app.extensions``."""

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})


class _Unrouted:
    """The route of a view not called yet: its state is never the stack's."""

    state = object()


_UNROUTED = cast(Route, _Unrouted())


class CachedView(Protocol[P, R]):
    """What :meth:`Cache.cached` returns: the view, cached.

    Attributes:
        uncached: The original view, called directly.
    """

    uncached: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached response, calling the view on a miss."""

    def make_cache_key(self, path: str | None = None, query_args: QueryArgs | None = None) -> str:
        """Return the key of a request: the current one, or the given path and query."""


class Cache:
    """Flask-Caching's ``Cache``, over stratacache's layers.

    Args:
        app: The application to configure now; or call :meth:`init_app` later.
        config: ``CACHE_*`` keys that override the application's (as in Flask-Caching).
        stack: The layer stack to configure and use (default: :data:`stratacache.cache`,
            which ``@cached_for`` functions use too).

    Reads go to the local layer, then the shared one; writes go to both. ``delete`` and
    ``clear`` reach this process's local layers and the shared layer: another process's
    local copy lives at most ``LOCALCACHE_DEFAULT_TIMEOUT`` seconds.
    """

    def __init__(
        self,
        app: Flask | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        stack: CacheStack | None = None,
    ) -> None:
        self.stack: CacheStack = stack if stack is not None else _process_stack()
        self.config = dict(config or {})
        self.settings: CacheSettings | None = None
        """The settings of the last :meth:`init_app`."""
        if app is not None:
            self.init_app(app)

    @property
    def cache(self) -> CacheStack:
        """The layer stack (where Flask-Caching gives its backend): ``.local_cache``, ..."""
        return self.stack

    def init_app(self, app: Flask, config: Mapping[str, Any] | None = None) -> None:
        """Configure the layers from ``app.config`` and register in ``app.extensions``.

        Args:
            app: The application; its ``CACHE_*`` and ``LOCALCACHE_*`` keys are read.
            config: Keys that override the application's and the constructor's.

        Raises:
            ConfigurationError: Every problem of the configuration at once.

        The stack is process-wide: initialising a second application reconfigures it.
        """
        merged = {**app.config, **self.config, **(config or {})}
        self.settings = self.stack.configure(settings_from_config(merged))
        app.extensions[EXTENSION_NAME] = self

    # -- the decorators -------------------------------------------------------------------

    def memoize(
        self, timeout: Timeout = None, **unsupported: Any
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Cache a function's results by its arguments: :func:`~stratacache.cached_for`.

        Args:
            timeout: Seconds (or a timedelta) entries live; ``None`` for
                ``CACHE_DEFAULT_TIMEOUT``. 0 (never expire) is refused: leave ``timeout``
                out and set ``CACHE_DEFAULT_TIMEOUT=0`` instead.
            **unsupported: Flask-Caching's other options, refused with an explanation.

        Raises:
            TypeError: An option stratacache does not support, or no parentheses.
            ValueError: ``timeout=0`` or a negative timeout.

        The decorated function has ``invalidate(*args)``, ``clear_cache()``, ``cache_key``
        and ``uncached``; :meth:`delete_memoized` calls the first two.
        """
        _refuse(unsupported, "memoize", "timeout")
        if callable(timeout):
            raise TypeError("write @cache.memoize() with parentheses, as in Flask-Caching")
        seconds = _seconds(timeout, "memoize")
        if seconds == 0:
            raise ValueError(
                "memoize(timeout=0) (never expire) has no per-function equivalent in"
                " stratacache: leave timeout out and set CACHE_DEFAULT_TIMEOUT=0, or give a"
                " duration"
            )
        return cached_for(seconds=seconds or 0, stack=self.stack)

    def cached(
        self,
        timeout: Timeout = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        *,
        unless: Callable[..., Any] | None = None,
        query_string: bool | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        **unsupported: Any,
    ) -> Callable[[Callable[P, R]], CachedView[P, R]]:
        """Cache a view's response by its request path and query string.

        Args:
            timeout: Seconds (or a timedelta) the response lives; ``None`` for
                ``CACHE_DEFAULT_TIMEOUT``; 0 to never expire.
            key_prefix: The key; ``%s`` is replaced by ``request.path``. A callable
                returns the whole key.
            unless: Bypass the cache when it returns ``True`` (called with no argument, or
                with the view and its arguments if it takes any).
            query_string: Add the sorted query arguments to the key. ``None`` (the default)
                adds them when the key names the path (``%s``), so ``/search?q=a`` and
                ``/search?q=b`` are two entries. Flask-Caching's default is ``False``.
            response_filter: Cache a response only if this returns true for it.
            **unsupported: Flask-Caching's other options, refused with an explanation.

        Raises:
            TypeError: An option stratacache does not support, or an ``async def`` view.

        Only ``GET`` and ``HEAD`` requests are cached; other methods call the view. An
        exception (``abort(404)`` included) is never cached. A response that cannot be
        serialized (a streamed one) is served uncached, with one warning per view.
        """
        _refuse(
            unsupported,
            "cached",
            "timeout, key_prefix, unless, query_string, response_filter",
        )
        if callable(timeout):
            raise TypeError("write @cache.cached() with parentheses, as in Flask-Caching")
        seconds = _seconds(timeout, "cached")
        stack = self.stack
        with_query = (
            query_string
            if query_string is not None
            else isinstance(key_prefix, str) and "%s" in key_prefix
        )
        unless_args = unless is not None and _takes_arguments(unless)

        def decorate(view: Callable[P, R]) -> CachedView[P, R]:
            if inspect.iscoroutinefunction(view):
                raise TypeError(
                    f"cache.cached() does not support async views yet ({view.__qualname__})"
                )
            warned = False

            def unstorable(exc: SerializationError) -> None:
                nonlocal warned
                if not warned:
                    warned = True
                    logger.warning(
                        "%s: response not cached, it cannot be serialized (%s)",
                        view.__qualname__,
                        exc,
                    )

            routes: list[Route] = [_UNROUTED]

            def make_cache_key(path: str | None = None, query_args: QueryArgs | None = None) -> str:
                return view_key(key_prefix, with_query, path, query_args)

            @functools.wraps(view)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                if unless is not None:
                    bypass = unless(view, *args, **kwargs) if unless_args else unless()
                    if bypass is True:
                        return view(*args, **kwargs)
                if has_request_context() and request.method not in _CACHEABLE_METHODS:
                    return view(*args, **kwargs)
                key = make_cache_key()
                route = routes[0]
                if route.state is not stack._state:
                    route = routes[0] = stack.route(seconds, on_unstorable=unstorable)
                value = engine.read(route, key)
                if value is not NO_VALUE:
                    return cast(R, value)
                value = view(*args, **kwargs)
                if response_filter is None or response_filter(value):
                    engine.write(route, key, value)
                return value

            wrapper.uncached = view  # type: ignore[attr-defined]
            wrapper.make_cache_key = make_cache_key  # type: ignore[attr-defined]
            return cast(CachedView[P, R], wrapper)

        return decorate

    # -- invalidation ---------------------------------------------------------------------

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Delete a memoized function's entries: every one, or the one of these arguments.

        Args:
            f: A function decorated with :meth:`memoize` (or ``cached_for``). For a method,
                pass the function from the class and ``self`` as the first argument.
            *args: The call's arguments; with none, every entry of ``f`` goes.
            **kwargs: The call's keyword arguments.

        Raises:
            TypeError: ``f`` is not memoized.
        """
        invalidate = getattr(f, "invalidate", None)
        clear_cache = getattr(f, "clear_cache", None)
        if invalidate is None or clear_cache is None:
            raise TypeError(
                f"delete_memoized: {f!r} is not memoized (decorate it with @cache.memoize())"
            )
        if args or kwargs:
            invalidate(*args, **kwargs)
        else:
            clear_cache()

    def delete_cached(
        self, f: CachedView[..., Any], path: str | None = None, query_args: QueryArgs | None = None
    ) -> bool:
        """Delete a cached view's entry for a path and query (default: the current request's).

        Returns:
            Whether some layer held it.
        """
        return self.stack.delete(f.make_cache_key(path=path, query_args=query_args))

    # -- the cachelib interface, across the layers ----------------------------------------

    def get(self, key: str) -> Any:
        """Return the value of ``key`` from the first layer that has it, else ``None``."""
        return self.stack.get(key)

    def has(self, key: str) -> bool:
        """Return whether some layer holds ``key`` (a shared hit fills the local layer)."""
        return self.stack.get(key, NO_VALUE) is not NO_VALUE

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` in the shared layer, then the local one; ``None`` is a value."""
        return self.stack.set(key, value, timeout)

    def delete(self, key: str) -> bool:
        """Delete ``key`` from every layer of this process; return whether one held it."""
        return self.stack.delete(key)

    def get_many(self, *keys: str) -> list[Any]:
        """Return the values of ``keys``, ``None`` for each miss."""
        return [self.stack.get(key) for key in keys]

    def set_many(self, mapping: Mapping[str, Any], timeout: Timeout = None) -> list[str]:
        """Store every item of ``mapping``; return the keys that were stored."""
        return [key for key, value in mapping.items() if self.stack.set(key, value, timeout)]

    def delete_many(self, *keys: str) -> list[str]:
        """Delete ``keys``; return those some layer held."""
        return [key for key in keys if self.stack.delete(key)]

    def clear(self) -> bool:
        """Clear every layer of this process and the shared layer (see ``CacheStack.clear``)."""
        return self.stack.clear()


def init_app(
    app: Flask, config: Mapping[str, Any] | None = None, *, stack: CacheStack | None = None
) -> Cache:
    """Configure stratacache from ``app.config`` and return the :class:`Cache`.

    The same as ``Cache(app, config)``: the ``CACHE_*`` and ``LOCALCACHE_*`` keys are
    validated and configure :data:`stratacache.cache` (or ``stack``); the extension is
    ``app.extensions["stratacache"]``.

    Raises:
        ConfigurationError: Every problem of the configuration at once.
    """
    return Cache(app, config, stack=stack)


# -- helpers ------------------------------------------------------------------------------


def _process_stack() -> CacheStack:
    from stratacache import cache

    return cache


def _refuse(unsupported: Mapping[str, Any], decorator: str, supported: str) -> None:
    if unsupported:
        names = ", ".join(sorted(unsupported))
        raise TypeError(
            f"cache.{decorator}(): stratacache does not support Flask-Caching's {names};"
            f" it takes {supported} (see docs/flask.md)"
        )


def _seconds(timeout: Timeout, decorator: str) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"cache.{decorator}(timeout={timeout!r}): give seconds or a timedelta, or None"
        )
    if timeout < 0:
        raise ValueError(f"cache.{decorator}(timeout={timeout!r}): must not be negative")
    return timeout


def _takes_arguments(func: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return False
