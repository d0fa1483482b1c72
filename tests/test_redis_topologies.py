"""The Redis backends on Redis Cluster and behind Sentinel, against real processes.

The conformance suite runs on the session's cluster (3 masters, 3 replicas) and Sentinel set
(a master, a replica, 3 sentinels), each test under a prefix of its own. Then what the
topologies change: one ``GET`` per hit and one transaction per tracked write in the key's
slot, ``clear()`` over every master under the prefix only, the decorator's modes, and the
settings' errors. Failovers and resharding under load are reliability scenarios
(``tests/reliability/test_topology_faults.py``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from stratacache import CacheStack, ConfigurationError, cached_for
from stratacache.testing import BackendConformance, BackendFactory
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_topologies import RedisClusterNodes

_prefixes = itertools.count()


def fresh_prefix() -> str:
    """A key prefix no other test uses: the session's topologies are shared."""
    return f"t{next(_prefixes)}_"


# -- the conformance suite on both topologies --------------------------------------------


class TestClusterRedisCache(BackendConformance):
    backend_class: type[RedisCache] = RedisCache

    @pytest.fixture
    def make_backend(self, redis_cluster: RedisClusterNodes) -> BackendFactory:
        prefix = fresh_prefix()
        return lambda **options: self.backend_class(
            cluster=redis_cluster.startup_nodes, key_prefix=prefix, **options
        )


class TestClusterRedisCacheNoExceptions(TestClusterRedisCache):
    backend_class = RedisCacheNoExceptions


class TestClusterRedisCacheAtomic(TestClusterRedisCache):
    backend_class = RedisCacheAtomic


class TestSentinelRedisCache(BackendConformance):
    backend_class: type[RedisCache] = RedisCache

    @pytest.fixture
    def make_backend(self, redis_sentinel: RedisSentinelSet) -> BackendFactory:
        prefix = fresh_prefix()
        return lambda **options: self.backend_class(
            sentinels=redis_sentinel.sentinels,
            sentinel_master=redis_sentinel.master_name,
            key_prefix=prefix,
            **options,
        )


class TestSentinelRedisCacheNoExceptions(TestSentinelRedisCache):
    backend_class = RedisCacheNoExceptions


class TestSentinelRedisCacheAtomic(TestSentinelRedisCache):
    backend_class = RedisCacheAtomic


# -- what the cluster runs, command by command ---------------------------------------------


# What the probes themselves send (connecting, resetting, asking for the view), and the
# replicas' REPLCONF ACK, which reaches each master every second (counted once a loaded test
# took longer than that between a reset and its count).
PROBING = {
    "config|resetstat",
    "hello",
    "cluster|nodes",
    "client|setinfo",
    "info",
    "ping",
    "replconf",
}


def command_counts(cluster: RedisClusterNodes) -> dict[str, int]:
    """Calls per data command since the last reset, summed over the masters."""
    counts: dict[str, int] = {}
    for node in cluster.masters:
        for name, stats in node.probe().info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command not in PROBING:
                counts[command] = counts.get(command, 0) + int(stats["calls"])
    return counts


def reset_counts(cluster: RedisClusterNodes) -> None:
    for node in cluster.masters:
        node.probe().config_resetstat()


def test_a_hit_is_one_get_and_a_tracked_write_one_transaction(
    redis_cluster: RedisClusterNodes,
) -> None:
    """On Cluster a tracked write stays a transaction (a script meets TRYAGAIN mid-migration)."""
    stack = CacheStack.from_tiers(
        [RedisCache(cluster=redis_cluster.startup_nodes, key_prefix=fresh_prefix())]
    )

    @cached_for(minutes=5, stack=stack)
    def price(item: int) -> dict[str, int]:
        return {"item": item}

    price(0)  # the client discovers the cluster first
    reset_counts(redis_cluster)
    assert price(1) == {"item": 1}  # a miss, then a tracked write
    written = command_counts(redis_cluster)
    reset_counts(redis_cluster)
    assert price(1) == {"item": 1}
    read = command_counts(redis_cluster)
    assert read == {"get": 1}
    assert written.get("multi") == 1
    assert written.get("exec") == 1
    assert written.get("set") == 1
    assert "evalsha" not in written, written


def test_clear_scans_every_master_under_the_prefix_only(redis_cluster: RedisClusterNodes) -> None:
    prefix = fresh_prefix()
    ours = RedisCache(cluster=redis_cluster.startup_nodes, key_prefix=prefix)
    theirs = redis_cluster.client()
    keys = [f"k{n}" for n in range(200)]  # spread over the slots of every master
    for key in keys:
        ours.set(key, key)
        theirs.set(f"other_{key}", b"kept")
    masters_holding = {redis_cluster.master_for_key(prefix + key).port for key in keys}
    assert len(masters_holding) == len(redis_cluster.masters)
    assert ours.clear() is True
    assert all(ours.get(key) is None for key in keys)
    assert all(theirs.get(f"other_{key}") == b"kept" for key in keys)


def test_the_modes_and_clear_cache_on_the_cluster(redis_cluster: RedisClusterNodes) -> None:
    stack = CacheStack.from_tiers(
        [RedisCacheAtomic(cluster=redis_cluster.startup_nodes, key_prefix=fresh_prefix())]
    )
    calls: list[int] = []

    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    def once(item: int) -> int:
        calls.append(item)
        return item * 2

    @cached_for(minutes=5, stack=stack, atomic_writes="at_least_once")
    def least(item: int) -> int:
        calls.append(item)
        return item * 3

    assert [once(n) for n in range(5)] * 2 == [once(n) for n in [*range(5), *range(5)]]
    assert least(2) == least(2) == 6
    assert len(calls) == 6
    once.invalidate(1)
    assert once(1) == 2
    assert len(calls) == 7
    assert once.clear_cache() == 5  # from the tracking set, without a scan
    assert once(3) == 6
    assert len(calls) == 8


def test_operators_see_every_node_with_its_role(redis_cluster: RedisClusterNodes) -> None:
    backend = RedisCache(cluster=redis_cluster.startup_nodes, key_prefix=fresh_prefix())
    backend.set("k", 1)
    nodes = backend.ping_nodes()
    assert sorted(node["role"] for node in nodes) == ["master"] * 3 + ["replica"] * 3
    assert all(node["ok"] for node in nodes)
    described = backend.describe()
    assert described["entries"] == 1
    assert {node["role"] for node in described["nodes"].values()} == {"master", "replica"}
    stats = backend.store_stats()
    assert len(stats["nodes"]) == 6
    masters = [n for n in stats["nodes"].values() if n["role"] == "master"]
    assert stats["keyspace_hits"] == sum(int(n["keyspace_hits"]) for n in masters)


def test_a_sentinel_tier_reaches_the_master(redis_sentinel: RedisSentinelSet) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_SENTINELS": redis_sentinel.sentinels,
            "CACHE_REDIS_SENTINEL_MASTER": redis_sentinel.master_name,
            "CACHE_KEY_PREFIX": fresh_prefix(),
        }
    )
    stack.set("k", {"v": 1})
    assert stack.get("k") == {"v": 1}
    assert stack.shared_cache.cache.describe()["entries"] == 1
    pool = stack.shared_cache.cache.client.connection_pool  # type: ignore[attr-defined]
    assert tuple(pool.get_master_address()) == tuple(redis_sentinel.master_address())


# -- settings -------------------------------------------------------------------------------


def problems(**settings: Any) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        CacheStack.validate({"CACHE_TYPE": "RedisCache", **settings})
    return caught.value.problems


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"CACHE_REDIS_CLUSTER": ""}, "CACHE_REDIS_CLUSTER='': the list of cluster nodes is empty"),
        ({"CACHE_REDIS_CLUSTER": "a:b"}, "the port 'b' of a is not a port number"),
        ({"CACHE_REDIS_CLUSTER": "::1:7000"}, "put an IPv6 address in brackets"),
        ({"CACHE_REDIS_CLUSTER": "redis://a:7000/3"}, "a cluster has only database 0"),
        ({"CACHE_REDIS_SENTINELS": "a:26379"}, "CACHE_REDIS_SENTINEL_MASTER"),
        ({"CACHE_REDIS_SENTINEL_MASTER": "m"}, "a master name without sentinels"),
        (
            {"CACHE_REDIS_CLUSTER": "a:7000", "CACHE_REDIS_URL": "redis://b:6379/0"},
            "remove it, or remove the cluster setting",
        ),
        ({"CACHE_REDIS_CLUSTER": "a:7000", "CACHE_REDIS_HOST": "b"}, "CACHE_REDIS_HOST (host)"),
        (
            {"CACHE_REDIS_CLUSTER": "a:7000", "CACHE_REDIS_SENTINELS": "b:1"},
            "Cluster and Sentinel together",
        ),
        ({"CACHE_REDIS_READ_FROM_REPLICAS": "true"}, "only a Redis Cluster tier"),
        ({"CACHE_REDIS_CLUSTER": '["a:7000",'}, "starts with '[' but is not a JSON list"),
        (
            {"CACHE_REDIS_CLUSTER": "a:7000", "CACHE_KEY_PREFIX": "{app}:"},
            "pins every key to one Cluster slot",
        ),
    ],
)
def test_bad_topology_settings_are_refused_at_start_up(
    settings: dict[str, Any], expected: str
) -> None:
    (problem,) = problems(**settings)
    assert expected in problem


@pytest.mark.parametrize(
    "given",
    [
        "10.0.0.1:7000,[::1]:7001, rediss://h:7002",
        '["10.0.0.1:7000", "[::1]:7001", "rediss://h:7002"]',
        ["10.0.0.1:7000", "[::1]:7001", "rediss://h:7002"],
    ],
)
def test_one_rule_for_lists_json_or_comma_separated(given: Any) -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_CLUSTER": given})
    nodes = stack.shared_cache.cache.topology.nodes
    assert [(n.host, n.port, n.tls) for n in nodes] == [
        ("10.0.0.1", 7000, False),
        ("::1", 7001, False),
        ("h", 7002, True),
    ]
