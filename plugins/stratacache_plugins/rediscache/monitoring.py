"""What the operator's commands (``stratacache ping``, ``info``, ``stats``) read from Redis.

On one server or a Sentinel master, that is the one server. On a Cluster, each node
answers for itself, with its role, and the totals are the sums over the masters (a
replica holds copies of its master's keys). Every function here runs its commands
through ``direct``, the backend's way to run one operation that raises
:class:`~stratacache_plugins.rediscache.RedisCacheError` on a failure, in every Redis
backend (``RedisCache._direct``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.cluster import RedisCluster

from stratacache_plugins.rediscache.naming import (
    PrefixKeys,
    RedisKeys,
    keys_under,
    what_clear_deletes,
)
from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["Direct", "RedisMonitoring", "count_keys", "server_nodes"]

Direct = Callable[[str, Callable[[RedisLike], Any]], Any]
"""Runs ``action(client)`` as the named operation, raising on a Redis failure."""

_SERVER_FIELDS = ("redis_version", "used_memory", "used_memory_human", "maxmemory")
_COUNTERS = ("keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys")


def server_nodes(r: RedisLike) -> list[tuple[str, str, RedisLike]]:
    """``(address, role, client)`` of each server: the cluster's nodes, or the one server."""
    if not isinstance(r, RedisCluster):
        return [("server", "master", r)]
    found = []
    every = r.get_nodes()  # type: ignore[no-untyped-call]
    for node in sorted(every, key=lambda n: (n.server_type != "primary", n.name)):
        role = "master" if node.server_type == "primary" else "replica"
        found.append((node.name, role, node.redis_connection))
    return found


def count_keys(direct: Direct, prefix: str) -> PrefixKeys:
    """Count the keys under ``prefix`` by kind, with ``SCAN`` (every master, in batches)."""
    found = PrefixKeys(prefix)

    def scan(r: RedisLike) -> None:
        for name in keys_under(r, prefix):
            found.add(name)

    direct("SCAN", scan)
    return found


def _per_node(direct: Direct, section: str | None) -> list[dict[str, Any]]:
    def read(r: RedisLike) -> list[dict[str, Any]]:
        nodes = []
        for address, role, client in server_nodes(r):
            info = client.info(section) if section else client.info()
            nodes.append({**info, "node": address, "role": role, "dbsize": client.dbsize()})
        return nodes

    found: list[dict[str, Any]] = direct("INFO", read)
    return found


def _total(nodes: list[dict[str, Any]], field: str) -> int:
    return sum(int(node.get(field, 0)) for node in nodes if node["role"] == "master")


class RedisMonitoring(RedisKeys):
    """The operator's view of a Redis tier: per node on a Cluster, summed over its masters."""

    _direct: Callable[..., Any]
    _where: Callable[[], str]

    def ping(self) -> None:
        """``PING`` every server (on a Cluster, every node); raises in every Redis backend."""
        self._direct("PING", lambda r: [client.ping() for _, _, client in server_nodes(r)])

    def ping_nodes(self) -> list[dict[str, Any]]:
        """On a Cluster, one ``PING`` per node, with its role; ``[]`` on one server."""
        results: list[dict[str, Any]] = []

        def each(r: RedisLike) -> None:
            if not isinstance(r, RedisCluster):
                return
            for address, role, client in server_nodes(r):
                row: dict[str, Any] = {"node": address, "role": role}
                start = time.perf_counter()
                try:
                    client.ping()
                except Exception as exc:
                    results.append({**row, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
                else:
                    latency = round((time.perf_counter() - start) * 1000, 3)
                    results.append({**row, "ok": True, "latency_ms": latency})

        self._direct("PING", each)
        return results

    def describe(self) -> dict[str, Any]:
        """The servers (version, memory, eviction policy) and the keys under ``key_prefix``.

        Counts the keys with ``SCAN`` of the prefix (never ``KEYS``): with an empty prefix,
        ``entries`` counts every key of the database but the tracking sets and locks. On a
        Cluster, ``nodes`` describes each node and the sizes are summed over the masters.
        """
        prefix, where = self.key_prefix, self._where()
        nodes = _per_node(self._direct, None)
        keys = count_keys(self._direct, prefix)
        first = nodes[0]
        described: dict[str, Any] = {
            "backend": type(self).__name__,
            "url": where,
            "key_prefix": prefix,
            "default_timeout": self.default_timeout,
            "clears": what_clear_deletes(prefix, where),
            **{field: first.get(field) for field in _SERVER_FIELDS},
            "maxmemory_policy": first.get("maxmemory_policy"),
            "database_keys": _total(nodes, "dbsize"),
            "entries": keys.entries,
            "tracked_functions": len(keys.groups),
            "locks": keys.locks,
            **self._describe_invalidation(),
        }
        if len(nodes) > 1:
            described["used_memory"] = _total(nodes, "used_memory")
            described["nodes"] = {
                node["node"]: {
                    "role": node["role"],
                    "used_memory_human": node.get("used_memory_human"),
                    "keys": node["dbsize"],
                }
                for node in nodes
            }
        return described

    def _describe_invalidation(self) -> dict[str, Any]:
        """The invalidation channel as the server sees it: its name and its subscribers."""
        mode = getattr(self, "_invalidation", "off")
        if mode == "off":
            return {"invalidation": "off"}
        from stratacache_plugins.rediscache.announcing import Announcing

        channel = Announcing._channel_name(self)  # type: ignore[arg-type]
        if getattr(self, "_sharded", False):  # a Cluster's channels are sharded
            found = self._direct(  # on the master of the channel's slot
                "PUBSUB SHARDNUMSUB",
                lambda r: r.execute_command(
                    "PUBSUB", "SHARDNUMSUB", channel, target_nodes=r.get_node_from_key(channel)
                ),
            )
        else:
            found = self._direct("PUBSUB NUMSUB", lambda r: r.pubsub_numsub(channel))
        subscribers = _subscribers(found)
        return {
            "invalidation": mode,
            "invalidation_channel": channel,
            "invalidation_subscribers": subscribers,
        }

    def store_stats(self) -> dict[str, Any]:
        """The servers' own counters and the live entries of each tracked function.

        ``keyspace_hits``, ``keyspace_misses``, ``evicted_keys`` and ``expired_keys`` are the
        server's (every client and database, since its start or ``CONFIG RESETSTAT``); on a
        Cluster, summed over the masters, and given per node under ``nodes``. ``entries``
        counts the keys under ``key_prefix`` (``SCAN``); ``functions`` gives, per decorated
        function (``module.qualname``), the unexpired members of its tracking set:
        ``invalidate`` removes its member, but an entry deleted otherwise (``delete``, an
        eviction) is counted until it would have expired.
        """
        nodes = _per_node(self._direct, "stats")
        keys = count_keys(self._direct, self.key_prefix)
        groups = sorted(keys.groups)
        seconds, microseconds = self._direct("TIME", lambda r: r.time())  # the scores' clock
        now_ms = int(seconds) * 1000 + int(microseconds) // 1000

        def count(r: RedisLike) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for group in groups:
                pipe.zcount(self._tracking_key(group), f"({now_ms}", "+inf")
            return list(pipe.execute())

        counts = self._direct("ZCOUNT", count) if groups else []
        totals = {field: _total(nodes, field) for field in _COUNTERS}
        hits, misses = totals["keyspace_hits"], totals["keyspace_misses"]
        found: dict[str, Any] = {
            "keyspace_hits": hits,
            "keyspace_misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "evicted_keys": totals["evicted_keys"],
            "expired_keys": totals["expired_keys"],
            "entries": keys.entries,
            "functions": {group: int(n) for group, n in zip(groups, counts, strict=True)},
        }
        if len(nodes) > 1:
            found["nodes"] = {
                node["node"]: {"role": node["role"], **{f: node.get(f, 0) for f in _COUNTERS}}
                for node in nodes
            }
        return found


def _subscribers(reply: Any) -> int:
    """The count in a ``PUBSUB NUMSUB`` or ``SHARDNUMSUB`` reply for one channel."""
    if not reply:
        return 0
    if isinstance(reply, dict):
        return int(next(iter(reply.values())))
    first = reply[0]
    return int(first[1] if isinstance(first, (list, tuple)) else reply[1])
