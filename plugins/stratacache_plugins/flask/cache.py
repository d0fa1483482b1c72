"""The Flask ``Cache``: Flask-Caching's API over the stack's tiers and its engine."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, ParamSpec, TypeVar, cast

from flask import Flask

from stratacache import (
    NO_VALUE,
    CachedFunction,
    CacheSettings,
    CacheStack,
    Timeout,
    cached_for,
    engine,
)
from stratacache.cachedfunction import Decorator
from stratacache_plugins.flask.calls import WRITE_GROUP
from stratacache_plugins.flask.config import settings_from_config
from stratacache_plugins.flask.memoize import memoized, synchronous
from stratacache_plugins.flask.viewkeys import QueryArgs
from stratacache_plugins.flask.views import CachedView, cached_view

__all__ = ["EXTENSION_NAME", "Cache", "CachedView", "QueryArgs", "init_app"]

logger = logging.getLogger("stratacache.flask")

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION_NAME: Final = "stratacache"
"""The key of the :class:`Cache` in ``app.extensions``."""

FLASK_CACHING_EXTENSION: Final = "cache"
"""Flask-Caching's key in ``app.extensions``: ``{cache: backend}``, kept for code that reads
``app.extensions["cache"][cache]`` (the backend of the shared layer here)."""


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
        self.app: Flask | None = None
        """The application of the last :meth:`init_app` (as in Flask-Caching)."""
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
        ``app.extensions["cache"][self]`` is the shared layer's backend, as in Flask-Caching
        (where it is the one backend).
        """
        merged = {**app.config, **self.config, **(config or {})}
        self.settings = self.stack.configure(settings_from_config(merged))
        app.extensions[EXTENSION_NAME] = self
        # Flask-Caching's own entry: {Cache: its backend}, here the shared layer's backend.
        app.extensions.setdefault(FLASK_CACHING_EXTENSION, {})[self] = self.stack.shared_cache.cache
        self.app = app

    # -- the decorators -------------------------------------------------------------------

    def memoize(
        self,
        timeout: Timeout = None,
        *,
        unless: Callable[..., Any] | None = None,
        **unsupported: Any,
    ) -> Decorator:
        """Cache a function's results by its arguments: :func:`~stratacache.cached_for`.

        Args:
            timeout: Seconds (or a timedelta) entries live; ``None`` for
                ``CACHE_DEFAULT_TIMEOUT``. 0 (never expire) is refused: leave ``timeout``
                out and set ``CACHE_DEFAULT_TIMEOUT=0`` instead.
            unless: Bypass the cache when it returns ``True`` (as in :meth:`cached`).
            **unsupported: Flask-Caching's other options, refused with an explanation.

        Raises:
            TypeError: An option stratacache does not support, or no parentheses.
            ValueError: ``timeout=0`` or a negative timeout.

        The decorated function has ``invalidate(*args)``, ``clear_cache()``, ``cache_key``,
        ``make_cache_key(*args)``, ``cache_timeout`` (read at every call: assign it to
        change the timeout of later writes) and ``uncached``. A generator returned is
        consumed and its text, bytes or list of items cached (as Flask-Caching does). An
        ``async def`` gives a coroutine function (``cached_for``'s), whose ``invalidate``
        and ``clear_cache`` are awaited.
        """
        _refuse(unsupported, "memoize", "timeout, unless")
        if callable(timeout):
            raise TypeError("write @cache.memoize() with parentheses, as in Flask-Caching")
        seconds = _seconds(timeout, "memoize")
        if seconds == 0:
            raise ValueError(
                "memoize(timeout=0) (never expire) has no per-function equivalent in"
                " stratacache: leave timeout out and set CACHE_DEFAULT_TIMEOUT=0, or give a"
                " duration"
            )

        def decorate(func: Callable[P, R]) -> CachedFunction[P, R]:
            inner = cached_for(seconds=seconds or 0, stack=self.stack)(func)
            overridden = type(self).get is not Cache.get or type(self).set is not Cache.set
            return memoized(inner, timeout, self, overridden, unless)

        # The typing of cached_for's: a coroutine function gives an AsyncCachedFunction.
        return cast(Decorator, decorate)

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
            TypeError: An option stratacache does not support, or no parentheses.

        Only ``GET`` and ``HEAD`` requests are cached; other methods call the view. An
        exception (``abort(404)`` included) is never cached. A response that cannot be
        serialized (a streamed one) is served uncached, with one warning per view. An
        ``async def`` view gives a coroutine function, which Flask runs as it runs the view
        (``app.ensure_sync``); the same keys and rules serve it, awaited.
        """
        _refuse(
            unsupported,
            "cached",
            "timeout, key_prefix, unless, query_string, response_filter",
        )
        if callable(timeout):
            raise TypeError("write @cache.cached() with parentheses, as in Flask-Caching")
        seconds = _seconds(timeout, "cached")
        with_query = (
            query_string
            if query_string is not None
            else isinstance(key_prefix, str) and "%s" in key_prefix
        )

        def decorate(view: Callable[P, R]) -> CachedView[P, R]:
            return cached_view(
                self,
                view,
                key_prefix=key_prefix,
                with_query=with_query,
                timeout=timeout,
                seconds=seconds,
                unless=unless,
                response_filter=response_filter,
            )

        return decorate

    # -- invalidation ---------------------------------------------------------------------

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Delete a memoized function's entries: every one, or the one of these arguments.

        Args:
            f: A function decorated with :meth:`memoize` (or ``cached_for``). For a method,
                pass the function from the class and ``self`` as the first argument.
            *args: The call's arguments; with none, every entry of ``f`` goes.
            **kwargs: The call's keyword arguments.

        It is synchronous for an ``async def`` too (as in Flask-Caching); in async code
        ``await f.invalidate(*args)`` does the same without blocking the event loop.

        Raises:
            TypeError: ``f`` is not memoized.
            ValueError: ``f`` is a classmethod and the arguments do not fit it (the class
                comes first).
        """
        # A classmethod over a memoized function: the class is an argument like the others,
        # given first, as Flask-Caching has it.
        target = f.__func__ if inspect.ismethod(f) else f
        invalidate = getattr(target, "invalidate", None)
        clear_cache = getattr(target, "clear_cache", None)
        if invalidate is None or clear_cache is None:
            raise TypeError(
                f"delete_memoized: {f!r} is not memoized (decorate it with @cache.memoize())"
            )
        invalidate, clear_cache = synchronous(invalidate), synchronous(clear_cache)
        if args or kwargs:
            if target is not f:
                try:
                    inspect.signature(target).bind(*args, **kwargs)
                except TypeError as exc:
                    raise ValueError(
                        f"delete_memoized: these arguments do not fit {f.__qualname__} ({exc});"
                        " for a classmethod, give the class first: delete_memoized(C.f, C, ...)"
                    ) from None
            invalidate(*args, **kwargs)
        else:
            clear_cache()

    def delete_memoized_verhash(self, f: Callable[..., Any], *args: Any) -> None:
        """Delete every entry of a memoized function (Flask-Caching: its version hash).

        stratacache's keys carry no version hash: the equivalent of invalidating every key
        of the old hash is deleting every entry of ``f``, what ``delete_memoized(f)`` does.

        Raises:
            TypeError: ``f`` is not memoized (a name is refused, as in Flask-Caching).
        """
        if not callable(f):
            raise TypeError(
                "delete_memoized_verhash: give the memoized function itself, not its name"
            )
        self.delete_memoized(f)

    def delete_cached(
        self,
        f: CachedView[..., Any],
        path: str | None = None,
        query_args: QueryArgs | None = None,
        **view_args: Any,
    ) -> bool:
        """Delete a cached view's entry for a path and query (default: the current request's).

        Args:
            f: The cached view.
            path: The request path; ``None`` builds it with ``url_for(f.__name__,
                **view_args)`` when view arguments are given or outside a request (as
                Flask-Caching does), else it is the current request's.
            query_args: The query (a string, a mapping or pairs); ``None``: the request's.
            **view_args: The view's arguments, for ``url_for``.

        Returns:
            Whether some layer held it.
        """
        return self.delete(f.make_cache_key(path=path, query_args=query_args, **view_args))

    # -- the cachelib interface, across the layers ----------------------------------------

    def get(self, key: str) -> Any:
        """Return the value of ``key`` from the first layer that has it, else ``None``."""
        return self.stack.get(key)

    def has(self, key: str) -> bool:
        """Return whether some layer holds ``key`` (a shared hit fills the local layer)."""
        return self.stack.get(key, NO_VALUE) is not NO_VALUE

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` in the shared layer, then the local one; ``None`` is a value.

        ``@memoize`` calls it (through a subclass that overrides ``get`` or ``set``) with its
        function's group set, so ``delete_memoized(f)`` reaches what it stored.
        """
        group = WRITE_GROUP.get()
        if group is None:
            return self.stack.set(key, value, timeout)
        seconds = self.stack._layers().shared.cache.timeout_seconds(timeout)
        return engine.write(self.stack.route(seconds, group=group), key, value, strict=True)

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

    def _through(self) -> Cache | None:
        """This cache if a subclass or a patch overrides ``get`` or ``set``, else ``None``.

        The decorators then read and write through them (one ``get``, and one ``set`` on a
        miss, per call, as Flask-Caching's do), without single flight or ``atomic_writes``;
        the plain ``Cache`` keeps the engine's hot path.
        """
        overridden = type(self).get is not Cache.get or type(self).set is not Cache.set
        if overridden or "get" in self.__dict__ or "set" in self.__dict__:
            return self
        return None


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
            f' it takes {supported} (stratacache docs, page "Flask", section'
            ' "What Cache supports")'
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
