"""The computations of RedisCacheAtomic: a lock holder's (``at_most_once``), a watcher's."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, final

from stratacache import Computation, Timeout
from stratacache_plugins.rediscache.plans import Plan, arun_plan, run_plan

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.atomic import RedisCacheAtomic

__all__ = ["DOWN", "Down", "LockedComputation", "WatchedComputation"]


@final
class Down:
    """The answer of a lock request that Redis refused: the caller computes without a lock."""


DOWN = Down()


class LockedComputation(Computation):
    """An ``at_most_once`` computation that holds the key's Redis lock."""

    def __init__(  # noqa: PLR0917 (an internal constructor)
        self,
        backend: RedisCacheAtomic,
        key: str,
        timeout: Timeout,
        group: str | None,
        token: str,
        waited: bool,
    ) -> None:
        super().__init__(backend, key, timeout, group, waited=waited)
        self.atomic = backend
        self.token = token
        self.released = False
        self.locked_at = time.monotonic()

    def commit(self, value: Any) -> Any:
        """Write ``value`` only if this caller still owns the lock, then release it."""
        return run_plan(self.atomic, self.atomic._commit_locked(self, value))

    async def acommit(self, value: Any) -> Any:
        """:meth:`commit`, awaited on this event loop's client."""
        return await arun_plan(self.atomic, self.atomic._commit_locked(self, value))

    def abort(self) -> None:
        """Release the lock (only if this caller still owns it), once."""
        run_plan(self.atomic, self._releasing())

    async def aabort(self) -> None:
        """:meth:`abort`, awaited."""
        await arun_plan(self.atomic, self._releasing())

    def _releasing(self) -> Plan[None]:
        if not self.released:
            yield from self.atomic._release(self.key, self.token)
            self.released = True


class WatchedComputation(Computation):
    """An ``at_least_once`` computation: the first completed write wins."""

    def __init__(
        self, backend: RedisCacheAtomic, key: str, timeout: Timeout, group: str | None
    ) -> None:
        super().__init__(backend, key, timeout, group)
        self.atomic = backend

    def commit(self, value: Any) -> Any:
        """Store ``value`` unless another caller stored first; return the stored value."""
        return self.atomic._commit_first_wins(self, value)
