"""The wrapper of a cached view: Flask-Caching's ``cached`` over the engine's route.

A ``def`` view and an ``async def`` one (which Flask runs through ``app.ensure_sync``) have
the same keys, plan and rules; the second is served awaited (:func:`~.stores.aserve`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

from flask import has_app_context, has_request_context, request, url_for

from stratacache import SerializationError, Timeout
from stratacache.engine import Route
from stratacache_plugins.flask.calls import bypass, normalize_timeout, takes_arguments
from stratacache_plugins.flask.stores import OwnerStore, RouteStore, Store, aserve, serve
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


_UNROUTED = RouteStore(cast(Route, _Unrouted()))


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
    """Return ``view`` cached by :meth:`Cache.cached` (its arguments, validated).

    An ``async def`` view gives a coroutine function: the same plan, served awaited.
    """
    stack = cache.stack
    unless_args = unless is not None and takes_arguments(unless)
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

    stores: list[RouteStore] = [_UNROUTED]
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

    def plan(args: Any, kwargs: Any) -> tuple[Store, str] | None:
        """Where this request's response is kept, and its key; ``None``: not cached."""
        if bypass(unless, unless_args, view, args, kwargs):
            return None
        if has_request_context() and request.method not in _CACHEABLE_METHODS:
            return None
        key = result.make_cache_key(*args, use_request=True, **kwargs)
        if result.cache_timeout is not applied[0]:
            given = result.cache_timeout
            applied[:] = [given, normalize_timeout(given, view.__qualname__)]
            stores[0] = _UNROUTED
        owner = cache._through()
        if owner is not None:  # a subclass's get/set see every read and write
            return OwnerStore(owner, applied[1]), key
        store = stores[0]
        if store.route.state is not stack._state:
            store = stores[0] = RouteStore(stack.route(applied[1], on_unstorable=unstorable))
        return store, key

    def keep(value: Any) -> bool:
        # None is never cached: Flask answers it with a 500, and a view that returned
        # it once would answer 500 until the entry expired.
        return value is not None and (response_filter is None or bool(response_filter(value)))

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        planned = plan(args, kwargs)
        if planned is None:
            return view(*args, **kwargs)
        return serve(*planned, lambda: view(*args, **kwargs), keep)

    async def awrapper(*args: Any, **kwargs: Any) -> Any:
        planned = plan(args, kwargs)
        if planned is None:
            return await cast(Any, view)(*args, **kwargs)
        return await aserve(*planned, lambda: cast(Any, view)(*args, **kwargs), keep)

    served = awrapper if inspect.iscoroutinefunction(view) else wrapper
    result = cast(CachedView[P, R], functools.wraps(view)(served))
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
