"""The wrapper of a cached view: Flask-Caching's ``cached`` over the engine's route."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

from flask import has_app_context, has_request_context, request, url_for

from stratacache import NO_VALUE, SerializationError, Timeout, engine
from stratacache.engine import Route
from stratacache_plugins.flask.calls import (
    async_refused,
    bypass,
    join_generator,
    normalize_timeout,
    takes_arguments,
)
from stratacache_plugins.flask.viewkeys import view_key

if TYPE_CHECKING:
    from stratacache_plugins.flask.cache import Cache

__all__ = ["CachedView", "cached_view"]

logger = logging.getLogger("stratacache.flask")

P = ParamSpec("P")
R = TypeVar("R")

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})


class _Unrouted:
    """The route of a view not called yet: its state is never the stack's."""

    state = object()


_UNROUTED = cast(Route, _Unrouted())


class CachedView(Protocol[P, R]):
    """What :meth:`Cache.cached` returns: the view, cached.

    Attributes:
        uncached: The original view, called directly.
        cache_timeout: The timeout of the next writes (read at every call, as in
            Flask-Caching: assign it to change it).
        make_cache_key: The key of a request: ``(path=, query_args=, **view_args)`` (the
            current request's by default); called at every request with the view's
            arguments and ``use_request=True``, so assigning it changes the key.
    """

    uncached: Callable[P, R]
    cache_timeout: Timeout
    make_cache_key: Callable[..., str]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached response, calling the view on a miss."""


def cached_view(
    cache: Cache,
    view: Callable[P, R],
    *,
    key_prefix: str | Callable[[], str],
    with_query: bool,
    timeout: Timeout,
    seconds: float | None,
    unless: Callable[..., Any] | None,
    response_filter: Callable[[Any], Any] | None,
) -> CachedView[P, R]:
    """Return ``view`` cached by :meth:`Cache.cached` (its arguments, validated)."""
    stack = cache.stack
    unless_args = unless is not None and takes_arguments(unless)
    if inspect.iscoroutinefunction(view):
        raise TypeError(async_refused("cache.cached()", "view", view))
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
    applied: list[Any] = [timeout, seconds]

    def make_cache_key(*args: Any, **kwargs: Any) -> str:
        if kwargs.pop("use_request", False):  # the wrapper's call: this request
            return view_key(key_prefix, with_query, None, None)
        path = kwargs.pop("path", None)
        query_args = kwargs.pop("query_args", None)
        kwargs.update(zip(_arg_names(view), args, strict=False))
        named = isinstance(key_prefix, str) and "%s" in key_prefix
        if path is None and named and (kwargs or not has_request_context()) and has_app_context():
            path = url_for(view.__name__, _external=False, **kwargs)
        return view_key(key_prefix, with_query, path, query_args)

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if bypass(unless, unless_args, view, args, kwargs):
            return view(*args, **kwargs)
        if has_request_context() and request.method not in _CACHEABLE_METHODS:
            return view(*args, **kwargs)
        key = result.make_cache_key(*args, use_request=True, **kwargs)
        if result.cache_timeout is not applied[0]:
            given = result.cache_timeout
            applied[:] = [given, normalize_timeout(given, view.__qualname__)]
            routes[0] = _UNROUTED
        owner = cache._through()
        if owner is not None:  # a subclass's get/set see every read and write
            value = owner.get(key)
            if value is not None:
                return cast(R, value)
            value = join_generator(view(*args, **kwargs))
            if value is not None and (response_filter is None or response_filter(value)):
                owner.set(key, value, timeout=applied[1])
            return cast(R, value)
        route = routes[0]
        if route.state is not stack._state:
            route = routes[0] = stack.route(applied[1], on_unstorable=unstorable)
        value = engine.read(route, key)
        if value is not NO_VALUE:
            return cast(R, value)
        value = join_generator(view(*args, **kwargs))
        # None is never cached: Flask answers it with a 500, and a view that returned
        # it once would answer 500 until the entry expired.
        if value is not None and (response_filter is None or response_filter(value)):
            engine.write(route, key, value)
        return cast(R, value)

    result = cast(CachedView[P, R], wrapper)
    result.uncached = view
    result.cache_timeout = timeout
    result.make_cache_key = make_cache_key
    return result


def _arg_names(view: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(view).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
