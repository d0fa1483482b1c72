"""What the operator's CLI asks of a Redis tier: ``describe`` and ``store_stats``.

Functions of the backend (each takes it as ``self``), kept apart from the data path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from stratacache_plugins.rediscache.naming import (
    CLEAR_BATCH,
    LOCK_PREFIX,
    TRACKING_SUFFIX,
    escape_glob,
)

if TYPE_CHECKING:
    import redis

    from stratacache_plugins.rediscache.cache import RedisCache

__all__ = ["describe", "scan_prefix", "store_stats"]


def describe(self: RedisCache) -> dict[str, Any]:
    """Describe the server (version, memory, eviction policy) and the keys under ``key_prefix``.

    Counts the keys with one ``SCAN`` of the prefix (never ``KEYS``): with an empty prefix,
    ``entries`` counts every key of the database but the tracking sets and locks.
    """
    info = self._direct("INFO", lambda r: r.info())
    keys = scan_prefix(self)
    prefix = self.key_prefix
    clears = (
        f"every key under the prefix {prefix!r} in {self._where()}"
        if prefix
        else f"EVERY key of {self._where()} (the key prefix is empty)"
    )
    return {
        "backend": type(self).__name__,
        "url": self._where(),
        "key_prefix": prefix,
        "default_timeout": self.default_timeout,
        "clears": clears,
        "redis_version": info.get("redis_version"),
        "used_memory": info.get("used_memory"),
        "used_memory_human": info.get("used_memory_human"),
        "maxmemory": info.get("maxmemory"),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "database_keys": self._direct("DBSIZE", lambda r: r.dbsize()),
        "entries": keys.entries,
        "tracked_functions": len(keys.groups),
        "locks": keys.locks,
    }


def store_stats(self: RedisCache) -> dict[str, Any]:
    """Return the server's own counters and the live entries of each tracked function.

    ``keyspace_hits``, ``keyspace_misses``, ``evicted_keys`` and ``expired_keys`` are the
    server's (every client and database, since its start or ``CONFIG RESETSTAT``).
    ``entries`` counts the keys under ``key_prefix`` (one ``SCAN``); ``functions`` gives,
    per decorated function (``module.qualname``), the unexpired members of its tracking
    set: an entry deleted on its own (``invalidate``) is counted until it would have
    expired.
    """
    info = self._direct("INFO stats", lambda r: r.info("stats"))
    keys = scan_prefix(self)
    groups = sorted(keys.groups)
    now_ms = int(time.time() * 1000)

    def count(r: redis.Redis) -> list[Any]:
        pipe = r.pipeline(transaction=False)
        for group in groups:
            pipe.zcount(self._tracking_key(group), f"({now_ms}", "+inf")
        return list(pipe.execute())

    counts = self._direct("ZCOUNT", count) if groups else []
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    return {
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "expired_keys": int(info.get("expired_keys", 0)),
        "entries": keys.entries,
        "functions": {group: int(n) for group, n in zip(groups, counts, strict=True)},
    }


def scan_prefix(self: RedisCache) -> _PrefixKeys:
    """Count the keys under ``key_prefix`` by kind, with ``SCAN`` (in batches)."""
    prefix = self.key_prefix.encode()
    lock = prefix + LOCK_PREFIX.encode()
    head, tail = prefix + b"{", b"}" + TRACKING_SUFFIX.encode()
    found = _PrefixKeys()

    def scan(r: redis.Redis) -> None:
        pattern = escape_glob(self.key_prefix) + "*"
        for name in r.scan_iter(match=pattern, count=CLEAR_BATCH):
            if name.startswith(head) and name.endswith(tail):
                found.groups.append(name[len(head) : -len(tail)].decode(errors="replace"))
            elif name.startswith(lock):
                found.locks += 1
            else:
                found.entries += 1

    self._direct("SCAN", scan)
    return found


class _PrefixKeys:
    """The keys under a prefix, by kind: entries, tracking sets (their groups), locks."""

    def __init__(self) -> None:
        self.entries = 0
        self.locks = 0
        self.groups: list[str] = []
