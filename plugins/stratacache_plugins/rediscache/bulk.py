"""The Redis backends' operations on many keys at once, and ``add``/``has`` (cachelib's API).

The engine does not use them; cachelib's users and Flask-Caching's do. Each is one round
trip: ``MGET`` (a ``GET`` pipeline on a Cluster), a pipeline of writes or deletes, with the
invalidation of the keys in the same round trip (:mod:`.announcing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stratacache import NO_VALUE, Timeout
from stratacache_plugins.rediscache.client import RedisClient
from stratacache_plugins.rediscache.codec import RedisCodec
from stratacache_plugins.rediscache.naming import fetch_many

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["RedisBulk"]


class RedisBulk(RedisClient, RedisCodec):
    """``get_many``, ``set_many``, ``delete_many``, ``add`` and ``has`` of the Redis backends."""

    if TYPE_CHECKING:  # RedisCache's and Announcing's, declared for the type checker only

        def _milliseconds(self, timeout: Timeout) -> int: ...
        def _write(self, pipe: Any, key: str, data: bytes, ms: int, group: str | None) -> None: ...
        def _queue_keys(self, pipe: Any, keys: Sequence[str], group: str | None = None) -> None: ...
        def _after_keys(
            self, r: RedisLike, keys: Sequence[str], group: str | None = None
        ) -> Any: ...
        def _announced(
            self,
            r: RedisLike,
            keys: Sequence[str],
            command: Callable[[Any], Any],
            group: str | None = None,
        ) -> Any: ...

    def get_many(self, *keys: str) -> list[Any]:
        """One round trip for all ``keys`` (``MGET``; on a Cluster, a ``GET`` pipeline)."""
        if not keys:
            return []
        names = [self._key(k) for k in keys]
        datas = self._run("MGET", lambda r: fetch_many(r, names), [None] * len(keys))
        values = []
        for key, data in zip(keys, datas, strict=True):
            value = NO_VALUE if data is None else self._loads(key, data)
            values.append(None if value is NO_VALUE else value)
        return values

    def has(self, key: str) -> bool:
        """One ``EXISTS``."""
        return bool(self._run("EXISTS", lambda r: r.exists(self._key(key)), 0))

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """``SET ... NX``: store only if ``key`` is absent."""
        data = self._dumps(key, value)
        ms = self._milliseconds(timeout)
        if ms < 0:
            return not self.has(key)
        return bool(
            self._run(
                "SET NX",
                lambda r: self._announced(
                    r, (key,), lambda c: c.set(self._key(key), data, px=ms or None, nx=True)
                ),
                False,
                payload=len(data),
            )
        )

    def set_many(self, mapping: dict[str, Any], timeout: Timeout = None) -> list[Any]:
        """Store every item in one pipelined round trip; return the keys stored."""
        datas = {key: self._dumps(key, value) for key, value in mapping.items()}
        ms = self._milliseconds(timeout)

        def write(r: RedisLike) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key, data in datas.items():
                self._write(pipe, key, data, ms, None)
            self._queue_keys(pipe, list(datas))
            pipe.execute()
            self._after_keys(r, list(datas))
            return list(datas)

        return list(self._run("SET", write, [], payload=sum(map(len, datas.values()))))

    def delete_many(self, *keys: str) -> list[Any]:
        """Delete ``keys`` in one pipelined round trip (one ``DEL`` each, cluster-safe)."""
        if not keys:
            return []

        def delete(r: RedisLike) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.delete(self._key(key))
            self._queue_keys(pipe, keys)
            pipe.execute()
            self._after_keys(r, keys)
            return list(keys)

        return list(self._run("DEL", delete, []))
