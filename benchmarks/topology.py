"""The Redis topologies the coherence benchmarks run on, started with the tests' helpers.

``single`` is one redis-server; ``sentinel`` a master, a replica and 3 sentinels
(``tests/redis_sentinel.py``); ``cluster`` 3 masters and 3 replicas
(``tests/redis_topologies.py``). All on free loopback ports, in a temporary directory, and
stopped by :meth:`Topology.stop`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.redis_server import RedisServer

NAMES = ("single", "sentinel", "cluster")


@dataclass
class Topology:
    """A running topology: the settings that reach it, its servers, and a server for truth."""

    name: str
    settings: dict[str, Any]
    """The ``CACHE_REDIS_*`` keys of a stack on it."""
    masters: Callable[[], list[RedisServer]]
    """The data servers that take writes now (asked each time: roles may change)."""
    servers: list[RedisServer]
    """Every data server, replicas included."""
    truth_url: str
    """A plain server for the benchmark's own keys: the single server itself, the Sentinel
    master, or one of its own beside a Cluster (whose nodes a plain client cannot use)."""
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every process of the topology."""
        for stop in self.stops:
            stop()


def start(name: str) -> Topology:
    """Start topology ``name`` (one of :data:`NAMES`) and wait until it is healthy."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if name == "single":
        server = RedisServer(directory).start()
        return Topology(
            name,
            {"CACHE_REDIS_URL": server.url},
            lambda: [server],
            [server],
            server.url,
            [server.stop],
        )
    if name == "sentinel":
        from tests.redis_sentinel import RedisSentinelSet

        servers = RedisSentinelSet(directory).start()
        settings = {
            "CACHE_REDIS_SENTINELS": servers.sentinels,
            "CACHE_REDIS_SENTINEL_MASTER": servers.master_name,
        }
        return Topology(
            name,
            settings,
            lambda: [servers.master],
            list(servers.servers),
            servers.master.url,
            [servers.stop],
        )
    if name == "cluster":
        from tests.redis_topologies import RedisClusterNodes

        nodes = RedisClusterNodes(directory / "cluster").start()
        truth = RedisServer(directory / "truth").start()
        return Topology(
            name,
            {"CACHE_REDIS_CLUSTER": nodes.startup_nodes},
            lambda: list(nodes.masters),
            list(nodes.nodes),
            truth.url,
            [nodes.stop, truth.stop],
        )
    raise SystemExit(f"unknown topology {name!r}: choose one of {', '.join(NAMES)}")


_probes: dict[int, redis.Redis] = {}


def counters(servers: list[RedisServer]) -> dict[str, float]:
    """The servers' CPU seconds (user + sys) and calls per command, summed over them.

    ``INFO`` itself is left out of the calls: the measurement's own command.
    """
    found: dict[str, float] = {"cpu_s": 0.0}
    for server in servers:
        client = _probes.get(server.port)
        if client is None:  # one connection each, kept: no HELLO in the counts
            client = _probes[server.port] = server.client(socket_timeout=10)
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        found["cpu_s"] += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        for name, fields in stats.items():
            command = name.removeprefix("cmdstat_")
            if command != "info":
                found[command] = found.get(command, 0) + int(fields["calls"])
    return found


def wait_subscribed(stack: Any, timeout: float = 30) -> None:
    """Wait until ``stack``'s channel is subscribed, its functions' own included (a Cluster's).

    A function decorated after the stack was configured has its channel confirmed a moment
    later: changes before then are not announced to it.
    """
    deadline = time.monotonic() + timeout
    cache = stack.shared_cache.cache
    while True:
        subscription = getattr(cache, "_subscription", None)
        watched = subscription is None or (
            not subscription.pending and subscription.channels <= subscription.listener._confirmed
        )
        if stack.stats()["invalidation"]["state"] == "subscribed" and watched:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"not subscribed after {timeout:g} s: {stack.stats()['invalidation']}")
        time.sleep(0.005)
