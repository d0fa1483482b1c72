"""What the operator's commands (``stratacache info``, ``stats``) read from a Redis server.

Each function takes ``direct``, the backend's way to run one operation on the server that
raises :class:`~stratacache_plugins.rediscache.RedisCacheError` on a failure, in every Redis
backend (``RedisCache._direct``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from stratacache_plugins.rediscache.naming import PrefixKeys, keys_under

__all__ = ["Direct", "count_keys", "server_and_keys", "store_counters"]

Direct = Callable[[str, Callable[[redis.Redis], Any]], Any]
"""Runs ``action(client)`` as the named operation, raising on a Redis failure."""


def count_keys(direct: Direct, prefix: str) -> PrefixKeys:
    """Count the keys under ``prefix`` by kind, with ``SCAN`` (in batches)."""
    found = PrefixKeys(prefix)

    def scan(r: redis.Redis) -> None:
        for name in keys_under(r, prefix):
            found.add(name)

    direct("SCAN", scan)
    return found


def server_and_keys(direct: Direct, prefix: str) -> dict[str, Any]:
    """The server (version, memory, eviction policy) and the keys under ``prefix``."""
    info = direct("INFO", lambda r: r.info())
    keys = count_keys(direct, prefix)
    return {
        "redis_version": info.get("redis_version"),
        "used_memory": info.get("used_memory"),
        "used_memory_human": info.get("used_memory_human"),
        "maxmemory": info.get("maxmemory"),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "database_keys": direct("DBSIZE", lambda r: r.dbsize()),
        "entries": keys.entries,
        "tracked_functions": len(keys.groups),
        "locks": keys.locks,
    }


def store_counters(
    direct: Direct, prefix: str, tracking_key: Callable[[str], str]
) -> dict[str, Any]:
    """The server's own counters and the live entries of each tracked function.

    ``tracking_key`` names the tracking set of a function (see
    :meth:`RedisCache.store_stats <stratacache_plugins.rediscache.RedisCache.store_stats>`).
    """
    info = direct("INFO stats", lambda r: r.info("stats"))
    keys = count_keys(direct, prefix)
    groups = sorted(keys.groups)
    seconds, microseconds = direct("TIME", lambda r: r.time())  # the scores' clock
    now_ms = int(seconds) * 1000 + int(microseconds) // 1000

    def count(r: redis.Redis) -> list[Any]:
        pipe = r.pipeline(transaction=False)
        for group in groups:
            pipe.zcount(tracking_key(group), f"({now_ms}", "+inf")
        return list(pipe.execute())

    counts = direct("ZCOUNT", count) if groups else []
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
