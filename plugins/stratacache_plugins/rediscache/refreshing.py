"""The refresh leases of RedisCacheAtomic: one background refresh per key, across hosts.

A stale-while-revalidate refresh (see :mod:`stratacache.freshness`) asks the deepest tier
for a lease before it runs; RedisCacheAtomic lends the key's ``at_most_once`` lock, taken
without waiting, with the same scripts, sync and awaited (each a plan, :mod:`.plans`).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from stratacache_plugins.rediscache.locking import DOWN, Down
from stratacache_plugins.rediscache.plans import Plan, arun_plan, run_plan

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.noexceptions import RedisCacheNoExceptions

__all__ = ["RefreshLocks"]


class RefreshLocks:
    """``acquire_refresh``/``release_refresh`` on the ``at_most_once`` lock (a mixin)."""

    if TYPE_CHECKING:  # RedisCacheAtomic's, declared for the type checker only

        def _acquire(self, key: str, token: str) -> Plan[bool | Down | None]: ...
        def _release(self, key: str, token: str) -> Plan[None]: ...

    def acquire_refresh(self, key: str) -> str | None:
        """Take the ``at_most_once`` lock of ``key`` for a background refresh, not waiting.

        Another caller holding it (or no answer) means another refreshes: ``None``. Redis
        refusing means it is down: the refresh runs here, uncoordinated (``""``).
        """
        return run_plan(self._atomic(), self._claim_refresh(key))

    async def aacquire_refresh(self, key: str) -> str | None:
        """:meth:`acquire_refresh`, awaited."""
        return await arun_plan(self._atomic(), self._claim_refresh(key))

    def release_refresh(self, key: str, lease: str) -> None:
        """Release the lock taken by :meth:`acquire_refresh` (only if still ours)."""
        if lease:
            run_plan(self._atomic(), self._release(key, lease))

    async def arelease_refresh(self, key: str, lease: str) -> None:
        """:meth:`release_refresh`, awaited."""
        if lease:
            await arun_plan(self._atomic(), self._release(key, lease))

    def _claim_refresh(self, key: str) -> Plan[str | None]:
        token = secrets.token_hex(16)
        acquired = yield from self._acquire(key, token)
        if acquired is True:
            return token
        return "" if acquired is DOWN else None

    def _atomic(self) -> RedisCacheNoExceptions:
        return self  # type: ignore[return-value]
