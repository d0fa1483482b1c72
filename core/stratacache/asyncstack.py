"""The stack's own API for ``async def`` code: ``await cache.aget/aset/adelete/aclear``.

The same rules as ``get``/``set``/``delete``/``clear`` (the engine's), run by the async
driver: an in-process tier is read and written directly, a tier whose backend serves async
code (Redis) is awaited, any other in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stratacache import engine
from stratacache.backend import NO_VALUE, Timeout
from stratacache.driver import adrive
from stratacache.freshness import unwrapped

if TYPE_CHECKING:
    from collections.abc import Callable

    from stratacache.state import StackState

__all__ = ["AsyncOperations"]

logger = logging.getLogger("stratacache.stack")


class AsyncOperations:
    """The awaitable twins of :class:`~stratacache.CacheStack`'s operations across tiers."""

    # CacheStack's, declared for the type checker only.
    _layers: Callable[[], StackState]
    _calls: Any

    def _warn_threaded(self, state: StackState) -> None:
        """Warn once per configuration when async functions reach tiers through threads."""
        if state.warned_threads or not state.threaded:
            return
        if not any(getattr(call, "is_async", False) for call in list(self._calls)):
            return
        state.warned_threads = True
        logger.warning(
            "the tiers %s have no async API (their backends declare api='sync'): async"
            " functions run their operations in worker threads (asyncio.to_thread), so the"
            " event loop never blocks; a backend with api='both' (the Redis backends) is"
            " awaited instead",
            ", ".join(f"{t.name!r} ({type(t.cache).__name__})" for t in state.threaded),
        )

    async def aget(self, key: str, default: Any = None) -> Any:
        """``get``, awaited: the value of ``key`` from the first tier that has it."""
        route = self._layers().stack_route
        value = await adrive(engine.read_rule(route, key))
        return default if value is NO_VALUE else unwrapped(value, default)

    async def aset(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """``set``, awaited: store ``value`` in every tier, deepest first."""
        state = self._layers()
        seconds = state.shared.cache.timeout_seconds(timeout)
        route = engine.Route(state, state.chain, seconds, None, engine.UNCOUNTED)
        return await adrive(engine.write_rule(route, key, value, strict=True))

    async def adelete(self, key: str) -> bool:
        """``delete``, awaited: remove ``key`` from every tier.

        A decorated function computing ``key`` right now will not write it back.
        """
        for call in list(self._calls):
            call.guard.invalidate(key)
        return await adrive(engine.remove_rule(self._layers().every, key)) > 0

    async def aclear(self) -> bool:
        """``clear``, awaited: clear every tier; True if all did."""
        for call in list(self._calls):
            call.guard.invalidate_all()
        return await adrive(engine.clear_rule(self._layers().every))
