"""The awaited twins of :class:`~stratacache.Tier`'s operations (``native_async`` tiers only).

:func:`~stratacache.driver.adrive` awaits them on a tier whose backend serves async code
natively (no plugin operation hook: hooks are synchronous). They keep the same counts and
the same auto-recovery bookkeeping (:mod:`stratacache.recovery`) as the plain operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from stratacache.backend import NO_VALUE, Computation, Timeout
from stratacache.recovery import ALL

if TYPE_CHECKING:
    from stratacache.backend import Backend
    from stratacache.recovery import Recovery
    from stratacache.stats import LayerStats

__all__ = ["AwaitedTier"]


class AwaitedTier:
    """The ``a``-methods of a tier; mixed into :class:`~stratacache.Tier`."""

    __slots__ = ()

    if TYPE_CHECKING:
        cache: Backend
        stats: LayerStats
        recovery: Recovery | None

    def alookup(self, key: str, group: str | None = None) -> Awaitable[Any]:
        """:meth:`~stratacache.Tier.lookup`, to await: the backend's own coroutine.

        No layer of ours between, unless auto-recovery has something queued.
        """
        recovery = self.recovery
        if recovery is not None and recovery.pending:
            return self._alookup_recovering(recovery, key, group)
        return self.cache.alookup(key)

    async def _alookup_recovering(self, recovery: Recovery, key: str, group: str | None) -> Any:
        if recovery.blocks(key, group):
            return NO_VALUE
        mark = recovery.mark()
        value = await self.cache.alookup(key)
        recovery.reached(mark)
        return value

    def alookup_entry(
        self, key: str, group: str | None = None
    ) -> Awaitable[tuple[Any, float | None]]:
        """:meth:`~stratacache.Tier.lookup_entry`, to await (see :meth:`alookup`)."""
        recovery = self.recovery
        if recovery is not None and recovery.pending:
            return self._alookup_entry_recovering(recovery, key, group)
        return self.cache.alookup_entry(key)

    async def _alookup_entry_recovering(
        self, recovery: Recovery, key: str, group: str | None
    ) -> tuple[Any, float | None]:
        if recovery.blocks(key, group):
            return NO_VALUE, None
        mark = recovery.mark()
        found = await self.cache.alookup_entry(key)
        recovery.reached(mark)
        return found

    async def astore(
        self,
        key: str,
        value: Any,
        timeout: Timeout,
        group: str | None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """:meth:`~stratacache.Tier.store`, awaited."""
        cache = self.cache
        stored = bool(
            await (
                cache.aset_tagged(key, value, timeout, group, tags)
                if tags
                else cache.aset_tracked(key, value, timeout, group)
            )
        )
        if stored:
            self.stats.sets += 1
            if self.recovery is not None and self.recovery.pending:
                self.recovery.written(key)
        return stored

    async def astart_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """:meth:`~stratacache.Tier.start_computation`, awaited."""
        return await self.cache.astart_computation(key, timeout, group, mode)

    async def acommit(self, computation: Computation, value: Any) -> Any:
        """:meth:`~stratacache.Tier.commit`, awaited."""
        result = await computation.acommit(value)
        if computation.stored:
            self.stats.sets += 1
            if self.recovery is not None and self.recovery.pending:
                self.recovery.written(computation.key)
        return result

    async def apause(self, seconds: float) -> None:
        """:meth:`~stratacache.Tier.pause`, awaited: the event loop runs meanwhile."""
        await asyncio.sleep(seconds)

    async def aabort(self, computation: Computation) -> None:
        """:meth:`~stratacache.Tier.abort`, awaited."""
        await computation.aabort()

    async def aacquire_refresh(self, key: str) -> str | None:
        """:meth:`~stratacache.Tier.acquire_refresh`, awaited."""
        return await self.cache.aacquire_refresh(key)

    async def arelease_refresh(self, key: str, lease: str) -> None:
        """:meth:`~stratacache.Tier.release_refresh`, awaited."""
        await self.cache.arelease_refresh(key, lease)

    async def aremove(self, key: str, group: str | None = None) -> bool:
        """:meth:`~stratacache.Tier.remove`, awaited."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        cache = self.cache
        removed = await (cache.adelete(key) if group is None else cache.adelete_tracked(key, group))
        if removed:
            self.stats.deletes += 1
        if recovery is not None:
            recovery.after(mark, ("key", key, group or ""))
        return bool(removed)

    async def aclear_group(self, group: str) -> int:
        """:meth:`~stratacache.Tier.clear_group`, awaited."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        removed = int(await self.cache.aclear_tracked(group))
        self.stats.deletes += removed
        if recovery is not None:
            recovery.after(mark, ("group", group))
        return removed

    async def ainvalidate_tag(self, tag: str) -> int:
        """:meth:`~stratacache.Tier.invalidate_tag`, awaited."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        removed = int(await self.cache.ainvalidate_tag(tag))
        self.stats.deletes += removed
        if recovery is not None:
            recovery.after(mark, ("tag", tag))
        return removed

    async def aclear(self) -> bool:
        """:meth:`~stratacache.Tier.clear`, awaited."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        cleared = bool(await self.cache.aclear())
        if recovery is not None:
            recovery.after(mark, ALL)
        return cleared
