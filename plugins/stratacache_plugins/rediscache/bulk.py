"""The Redis backends' multi-key operations: clears, group clears, signed increments."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import redis

from stratacache import NO_VALUE
from stratacache_plugins.rediscache.naming import CLEAR_BATCH

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.cache import RedisCache

__all__ = ["delete_tracked", "signed_increment", "unlink_matching"]

SIGNED_INC_ATTEMPTS = 100
"""Attempts of a signed ``inc`` whose key other clients keep writing."""


def unlink_each(r: redis.Redis, names: list[bytes]) -> None:
    """``UNLINK`` each of ``names``, one key per command (keys may live in other slots)."""
    if names:
        pipe = r.pipeline(transaction=False)
        for name in names:
            pipe.unlink(name)
        pipe.execute()


def unlink_matching(r: redis.Redis, pattern: str) -> None:
    """Delete every key matching ``pattern``, found with ``SCAN``, in batches (never KEYS)."""
    batch: list[bytes] = []
    for name in r.scan_iter(match=pattern, count=CLEAR_BATCH):
        batch.append(name)
        if len(batch) >= CLEAR_BATCH:
            unlink_each(r, batch)
            batch = []
    unlink_each(r, batch)


def delete_tracked(r: redis.Redis, tracking: str) -> int:
    """Delete the keys of the tracking set ``tracking`` in batches; return how many went."""
    removed = 0
    while True:
        members = r.zrange(tracking, 0, CLEAR_BATCH - 1)
        if not members:
            break
        pipe = r.pipeline(transaction=True)
        for member in members:
            pipe.delete(cast(bytes, member))
        pipe.zrem(tracking, *members)
        results = pipe.execute()
        removed += sum(int(n) for n in results[:-1])
    return removed  # the emptied set is gone: Redis deletes empty sorted sets


def signed_increment(self: RedisCache, r: redis.Redis, key: str, delta: int) -> int:
    """``inc`` with a secret key: a signed read-modify-write under ``WATCH``, retried."""
    full = self._key(key)
    with r.pipeline(transaction=True) as pipe:
        for attempt in range(SIGNED_INC_ATTEMPTS):
            try:
                pipe.watch(full)  # type: ignore[no-untyped-call]
                data = pipe.get(full)
                current = NO_VALUE if data is None else self._loads(key, data)
                if current is NO_VALUE:  # missing, or unreadable and deleted
                    current = 0
                if type(current) is not int:
                    raise TypeError(
                        f"cannot increment {key!r}: it holds a {type(current).__name__},"
                        " not an integer"
                    )
                pipe.multi()
                pipe.set(full, self.dump_value(full, current + delta), keepttl=True)
                pipe.execute()
                return current + delta
            except redis.WatchError:
                if attempt == SIGNED_INC_ATTEMPTS - 1:
                    raise  # as a Redis failure: RedisCacheError, or None without exceptions
    raise AssertionError("unreachable")  # pragma: no cover
