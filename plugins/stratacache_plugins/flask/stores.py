"""Where the Flask decorators read and write, from a ``def`` or from an ``async def``.

A cached view reads and writes through the engine's route (:class:`RouteStore`). A ``Cache``
whose ``get`` or ``set`` a subclass (or a patch) overrides is read and written through them
(:class:`OwnerStore`), one ``get`` and on a miss one ``set`` per call, as Flask-Caching's
decorators do. :func:`serve` is the read-through cycle of a ``def``; :func:`aserve` the same
cycle for an ``async def`` (as Flask runs one, through ``app.ensure_sync``), which never
blocks its event loop: the engine's rules are run by its async driver, and the synchronous
``get``/``set`` of a subclass run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stratacache import NO_VALUE, Timeout, engine
from stratacache.driver import adrive
from stratacache.engine import Route
from stratacache_plugins.flask.calls import join_generator, writing_group

__all__ = ["OwnerStore", "RouteStore", "Store", "aserve", "serve"]


class Store(Protocol):
    """Reads (:data:`~stratacache.NO_VALUE` for a miss) and writes, plain and awaited."""

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or :data:`~stratacache.NO_VALUE`."""

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""

    async def aget(self, key: str) -> Any:
        """:meth:`get`, awaited."""

    async def aput(self, key: str, value: Any) -> None:
        """:meth:`put`, awaited."""


class RouteStore:
    """The engine's route: its read path and backfill, its writes, its counts."""

    __slots__ = ("route",)

    def __init__(self, route: Route) -> None:
        self.route = route

    def get(self, key: str) -> Any:
        """Read the route's tiers top-down (:func:`stratacache.engine.read`)."""
        return engine.read(self.route, key)

    def put(self, key: str, value: Any) -> None:
        """Write every tier of the route, deepest first (:func:`stratacache.engine.write`)."""
        engine.write(self.route, key, value)

    async def aget(self, key: str) -> Any:
        """The same read, by the async driver (an in-process tier without an ``await``)."""
        return await adrive(engine.read_rule(self.route, key))

    async def aput(self, key: str, value: Any) -> None:
        """The same write, by the async driver."""
        await adrive(engine.write_rule(self.route, key, value))


class OwnerStore:
    """A ``Cache``'s own ``get`` and ``set``: ``None`` read back is a miss.

    Args:
        owner: The ``Cache`` (whose class or instance overrides ``get`` or ``set``).
        timeout: The ``timeout`` of its ``set``.
        group: The memoized function whose write ``Cache.set`` tracks, if any.
    """

    __slots__ = ("group", "owner", "timeout")

    def __init__(self, owner: Any, timeout: Timeout | float, group: str | None = None) -> None:
        self.owner = owner
        self.timeout = timeout
        self.group = group

    def get(self, key: str) -> Any:
        """``owner.get(key)``, ``None`` as a miss (Flask-Caching's, without ``cache_none``)."""
        value = self.owner.get(key)
        return NO_VALUE if value is None else value

    def put(self, key: str, value: Any) -> None:
        """``owner.set(key, value, timeout=...)``, tracked in the function's group."""
        with writing_group(self.group):
            self.owner.set(key, value, timeout=self.timeout)

    async def aget(self, key: str) -> Any:
        """:meth:`get` in a worker thread (the overriding ``get`` is synchronous)."""
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, value: Any) -> None:
        """:meth:`put` in a worker thread."""
        await asyncio.to_thread(self.put, key, value)


def serve(store: Store, key: str, compute: Callable[[], Any], keep: Callable[[Any], bool]) -> Any:
    """Return the value of ``key`` in ``store``; on a miss compute it, and store it if kept.

    A generator computed is joined first (:func:`~stratacache_plugins.flask.calls.join_generator`).
    """
    value = store.get(key)
    if value is NO_VALUE:
        value = join_generator(compute())
        if keep(value):
            store.put(key, value)
    return value


async def aserve(
    store: Store,
    key: str,
    compute: Callable[[], Awaitable[Any]],
    keep: Callable[[Any], bool],
) -> Any:
    """:func:`serve` for an ``async def``: ``compute()`` is awaited, the store too."""
    value = await store.aget(key)
    if value is NO_VALUE:
        value = join_generator(await compute())
        if keep(value):
            await store.aput(key, value)
    return value
