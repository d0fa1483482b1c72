"""The backend contract for ``async def`` code: what a backend declares, and its ``a``-methods.

A backend says which code it serves natively in :attr:`AsyncMethods.api`:

* ``"sync"`` (the default, and every backend written before asyncio support): its methods
  block. An in-process tier is called directly from async code all the same (a dict lookup
  does not block); any other tier runs its operations in worker threads
  (:func:`asyncio.to_thread`), and the stack warns once, when it is configured with async
  functions or when the first async function is decorated, that it does so.
* ``"both"``: it also implements the ``a``-methods below natively (the Redis backends, on
  ``redis.asyncio``), so async code awaits them with no thread.
* ``"async"``: it implements only the ``a``-methods; it serves ``async def`` functions and
  ``await cache.aget(...)``, and a synchronous call through its tier raises
  :class:`~stratacache.CacheError` saying so.

The ``a``-methods mirror the synchronous operations the engine uses
(:meth:`~AsyncMethods.alookup`, :meth:`~AsyncMethods.alookup_entry`,
:meth:`~AsyncMethods.aset_tracked`, :meth:`~AsyncMethods.adelete`,
:meth:`~AsyncMethods.adelete_tracked`, :meth:`~AsyncMethods.aclear_tracked`,
:meth:`~AsyncMethods.aclear`, :meth:`~AsyncMethods.astart_computation`), with the same
semantics; an ``atomic_writes`` computation has :meth:`Computation.acommit
<stratacache.Computation.acommit>` and ``aabort``. The defaults here run the synchronous
method in a worker thread, so a backend may make native only those that matter (its reads
and writes) and leave rare bulk operations (``aclear``) to a thread.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from stratacache.computation import Computation, Timeout

__all__ = ["API", "AsyncMethods"]

API = Literal["sync", "async", "both"]
"""Which code a backend serves natively: blocking calls, coroutines, or both."""


class AsyncMethods:
    """The awaitable twins of a backend's operations; the defaults run the sync ones in threads."""

    api: ClassVar[API] = "sync"
    """Which code the backend serves natively (see :mod:`stratacache.asyncbackend`)."""

    # The synchronous operations (Backend's), declared for the type checker only.
    if TYPE_CHECKING:

        def lookup(self, key: str) -> Any: ...  # noqa: D102
        def lookup_entry(self, key: str) -> tuple[Any, float | None]: ...  # noqa: D102
        def set_tracked(  # noqa: D102
            self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
        ) -> bool: ...
        def delete(self, key: str) -> bool: ...  # noqa: D102
        def delete_tracked(self, key: str, group: str) -> bool: ...  # noqa: D102
        def clear_tracked(self, group: str) -> int: ...  # noqa: D102
        def clear(self) -> bool: ...  # noqa: D102
        def start_computation(  # noqa: D102
            self, key: str, timeout: Timeout, group: str | None, mode: str
        ) -> Computation: ...

    async def alookup(self, key: str) -> Any:
        """``lookup``, awaited: the value of ``key``, or ``NO_VALUE`` on a miss."""
        return await asyncio.to_thread(self.lookup, key)

    async def alookup_entry(self, key: str) -> tuple[Any, float | None]:
        """``lookup_entry``, awaited: the value and its remaining lifetime."""
        return await asyncio.to_thread(self.lookup_entry, key)

    async def aset_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """``set_tracked``, awaited: store ``value`` and track ``key`` in ``group``."""
        return await asyncio.to_thread(self.set_tracked, key, value, timeout, group)

    async def adelete(self, key: str) -> bool:
        """``delete``, awaited."""
        return bool(await asyncio.to_thread(self.delete, key))

    async def adelete_tracked(self, key: str, group: str) -> bool:
        """``delete_tracked``, awaited."""
        return await asyncio.to_thread(self.delete_tracked, key, group)

    async def aclear_tracked(self, group: str) -> int:
        """``clear_tracked``, awaited: delete every entry of ``group``; how many went."""
        return await asyncio.to_thread(self.clear_tracked, group)

    async def aclear(self) -> bool:
        """``clear``, awaited."""
        return bool(await asyncio.to_thread(self.clear))

    async def astart_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """``start_computation``, awaited (a wait for another process's lock never blocks)."""
        return await asyncio.to_thread(self.start_computation, key, timeout, group, mode)
