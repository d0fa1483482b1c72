"""The Redis backends' operations for ``async def`` code, on ``redis.asyncio``.

Each is the synchronous operation's action (its commands, see :mod:`.client`) run on this
event loop's client (:mod:`.aioclient`) by ``_arun``, which applies the same failure policy
as ``_run``: a RedisCache raises :class:`~.client.RedisCacheError`, a
RedisCacheNoExceptions backs off and answers the fallback. Keys, codec, signing, tracking
and scripts are the synchronous operations' own. ``aclear`` and ``aclear_tracked`` (a scan,
batches of deletes) run the synchronous operation in a worker thread. A subclass that
overrides a synchronous operation (``lookup``, ``lookup_entry``, ``set``, ``set_tracked``,
``delete``, ``delete_tracked``) keeps seeing every call: then its async twin runs the
synchronous one in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from stratacache import NO_VALUE, DeserializationError, Timeout
from stratacache.asyncbackend import API
from stratacache_plugins.rediscache.client import RedisClient
from stratacache_plugins.rediscache.codec import RedisCodec

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["AwaitedRedis", "overrides"]

_TWINNED = ("lookup", "lookup_entry", "set", "set_tracked", "delete", "delete_tracked")
_OVERRIDES: dict[tuple[type, type], frozenset[str]] = {}


def overrides(kind: type, base: type) -> frozenset[str]:
    """The operations with an async twin that ``kind`` overrides from ``base`` (once each)."""
    found = _OVERRIDES.get((kind, base))
    if found is None:
        found = _OVERRIDES[kind, base] = frozenset(
            name for name in _TWINNED if getattr(kind, name) is not getattr(base, name)
        )
    return found


class AwaitedRedis(RedisClient, RedisCodec):
    """The awaitable operations of the Redis backends (see the module docstring)."""

    api: ClassVar[API] = "both"

    if TYPE_CHECKING:  # RedisCache's, declared for the type checker only

        def _reading(self, key: str) -> Callable[[RedisLike], Any]: ...
        def _reading_entry(self, key: str) -> Callable[[RedisLike], Any]: ...
        @staticmethod
        def _entry(
            key: str, data: Any, ms: Any, decode: Callable[[], Any]
        ) -> tuple[Any, float | None]: ...
        def _storing(
            self,
            key: str,
            value: Any,
            timeout: Timeout,
            group: str | None,
            tags: tuple[str, ...] = (),
        ) -> tuple[str, Callable[[RedisLike], Any], int]: ...
        def _overridden(self, *names: str) -> bool: ...
        def _deleting_tracked(self, key: str, group: str) -> Callable[[RedisLike], Any]: ...
        def _announced(
            self,
            r: RedisLike,
            keys: Any,
            command: Callable[[Any], Any],
            group: str | None = None,
        ) -> Any: ...

    async def alookup(self, key: str) -> Any:
        """One ``GET``, awaited: the value, or ``NO_VALUE`` on a miss."""
        if self._overridden("lookup"):
            return await asyncio.to_thread(self.lookup, key)
        data = await self._arun("GET", self._reading(key), None)
        if data is None:
            return NO_VALUE
        try:  # decoded here, not in _aloads: no coroutine more on a hit
            return self._decode(key, data)
        except DeserializationError:
            return await self._aloads(key, data)

    async def alookup_entry(self, key: str) -> tuple[Any, float | None]:
        """``GET`` and ``PTTL`` in one round trip, awaited: the value and the server's TTL."""
        if self._overridden("lookup", "lookup_entry"):
            return await asyncio.to_thread(self.lookup_entry, key)
        data, ms = await self._arun("GET+PTTL", self._reading_entry(key), (None, -2))
        gone = data is None or ms == -2  # as the sync lookup_entry: decoded only if there
        value = NO_VALUE if gone else await self._aloads(key, data)
        return self._entry(key, data, ms, lambda: value)

    async def aset_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value`` and track ``key`` in ``group``, in one round trip, awaited."""
        if self._overridden("set", "set_tracked"):
            return await asyncio.to_thread(self.set_tracked, key, value, timeout, group)
        operation, action, payload = self._storing(key, value, timeout, group)
        return bool(await self._arun(operation, action, False, payload=payload))

    async def aset_tagged(
        self,
        key: str,
        value: Any,
        timeout: Timeout = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Store ``value``, track it in ``group`` and in its tag sets, in one round trip."""
        if group is None or not tags or self._overridden("set", "set_tracked"):
            return await asyncio.to_thread(self.set_tagged, key, value, timeout, group, tags)
        operation, action, payload = self._storing(key, value, timeout, group, tags)
        return bool(await self._arun(operation, action, False, payload=payload))

    async def adelete(self, key: str) -> bool:
        """``DEL``, awaited; True if the key existed."""
        if self._overridden("delete"):
            return bool(await asyncio.to_thread(self.delete, key))
        full = self._key(key)
        return bool(
            await self._arun(
                "DEL", lambda r: self._announced(r, (key,), lambda c: c.delete(full)), 0
            )
        )

    async def adelete_tracked(self, key: str, group: str) -> bool:
        """``DEL`` the key and ``ZREM`` its tracking member in one transaction, awaited."""
        if self._overridden("delete", "delete_tracked"):
            return await asyncio.to_thread(self.delete_tracked, key, group)
        replies = await self._arun("DEL+ZREM", self._deleting_tracked(key, group), None)
        return bool(replies and replies[0])

    async def _aloads(self, key: str, data: Any) -> Any:
        """:meth:`_loads`, whose deletion of an unreadable entry is awaited."""
        try:
            return self._decode(key, data)
        except DeserializationError as exc:
            self._unreadable(key, exc)
            await self.adelete(key)
            return NO_VALUE
