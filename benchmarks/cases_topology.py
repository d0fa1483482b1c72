"""Redis Cluster and Sentinel: a shared hit on each, and Cluster throughput, against redis-py.

The family starts its topologies once per run, in the run's scratch directory, and stops them
at the end: a Redis Cluster of 3 masters and 3 replicas (``tests.redis_topologies``) and a
Sentinel set, a master, its replica and 3 sentinels (``tests.redis_sentinel``), all on free
loopback ports. The stratacache stacks are configured as an application would be, with
``CACHE_REDIS_CLUSTER`` or ``CACHE_REDIS_SENTINELS`` and the local layer off
(``LOCALCACHE_TYPE=NullCache``), so every call is a shared hit.

* Cluster hit: ``cached_for`` on the Cluster against raw ``RedisCluster.get`` +
  ``pickle.loads`` of the same value. The raw key carries the hash tag of the cached
  function's keys (its name), so both read the same slot, on the same master. For reference:
  the stack built from its one tier (``CacheStack.from_tiers``, no local layer to pass), and a
  plain ``redis.Redis`` GET on that master: the gap to it is the Cluster client's own cost.
* Sentinel hit: the same behind Sentinel, against a raw client the sentinels discovered
  (``Sentinel(...).master_for(...)``); the plain reference reads the master directly.
* Cluster throughput: the concurrency case (``cases_concurrency``) on the Cluster, with 1, 2,
  4 and 8 processes, each building its own ``RedisCluster`` client and stack after the fork.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
from collections.abc import Callable
from typing import Any

from cases_concurrency import PROCESSES, processes, throughput
from harness import measure
from model import CaseResult, Context, Table, check, make_table
from shared_hit import VALUE, rates

from stratacache import CacheStack, cached_for
from stratacache.keys import function_name
from stratacache_plugins.rediscache import RedisCache
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_topologies import CLI_HINT, RedisClusterNodes

CASES = ("cluster_hit", "sentinel_hit", "cluster_throughput")

RAW_CLUSTER = "raw redis-py RedisCluster.get + pickle.loads"
RAW_SENTINEL = "raw redis-py Sentinel master_for().get + pickle.loads"
RAW_NODE = "raw redis-py GET + pickle.loads, that master directly (reference)"
CLUSTER = "stratacache cached_for (RedisCache on the Cluster)"
CLUSTER_TIER = "stratacache cached_for (the Cluster tier alone, from_tiers)"
SENTINEL = "stratacache cached_for (RedisCache behind Sentinel)"
SENTINEL_TIER = "stratacache cached_for (the Sentinel tier alone, from_tiers)"

TAG = "{" + function_name(rates) + "}"
"""The hash tag of the cached function's keys: the raw keys carry it too (same slot)."""
RAW_KEY = f"topology:raw:{TAG}"
PAYLOAD = pickle.dumps(VALUE, pickle.HIGHEST_PROTOCOL)
NOISE = (
    "the {cores} cores are shared by the workers and the Cluster's 6 redis-servers (and the"
    " rest of the machine): with more processes than cores the ratios are bound by scheduling"
    " noise"
)

Contenders = dict[str, Callable[[], Any]]


def shared_stack(prefix: str, **settings: str) -> CacheStack:
    """A stack whose shared layer is RedisCache with ``settings``, its local layer off."""
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_KEY_PREFIX": prefix,
            "LOCALCACHE_TYPE": "NullCache",
            **settings,
        }
    )
    return stack


def hit(stack: CacheStack) -> Callable[[], Any]:
    """A ``cached_for`` hit on ``stack`` (its entry is written by the first call)."""
    return functools.partial(cached_for(minutes=10, stack=stack)(rates), "EUR")


def raw_get(client: Any, key: str = RAW_KEY) -> Callable[[], Any]:
    """``client.get(key)`` + ``pickle.loads``: the floor."""

    def get() -> Any:
        return pickle.loads(client.get(key))

    return get


def cluster_contenders(cluster: RedisClusterNodes, prefix: str) -> Contenders:
    """Raw ``RedisCluster`` and ``cached_for`` on the Cluster, with clients of their own."""
    client = cluster.client()
    client.set(RAW_KEY, PAYLOAD)
    return {
        RAW_CLUSTER: raw_get(client),
        CLUSTER: hit(shared_stack(prefix, CACHE_REDIS_CLUSTER=cluster.startup_nodes)),
    }


def cluster_hit(cluster: RedisClusterNodes, batches: int, calls: int) -> Table:
    """The Cluster hit, its tier alone, and a plain GET on the master of the slot."""
    cases = cluster_contenders(cluster, "topology_")
    tier = RedisCache(cluster=cluster.startup_nodes, key_prefix="topology_tier_")
    cases[CLUSTER_TIER] = hit(CacheStack.from_tiers([tier]))
    cases[RAW_NODE] = raw_get(cluster.master_for_key(RAW_KEY).client())
    for case in cases.values():
        assert case() == VALUE
    samples = measure(cases, batches, calls)
    return make_table("shared hit on the Cluster (local layer NullCache)", samples, RAW_CLUSTER)


def sentinel_hit(sentinel: RedisSentinelSet, batches: int, calls: int) -> Table:
    """The Sentinel hit, its tier alone, and a plain GET on the master."""
    discovered = sentinel.master_for()
    discovered.set(RAW_KEY, PAYLOAD)
    settings = {
        "CACHE_REDIS_SENTINELS": sentinel.sentinels,
        "CACHE_REDIS_SENTINEL_MASTER": sentinel.master_name,
    }
    tier = RedisCache(
        sentinels=sentinel.sentinels,
        sentinel_master=sentinel.master_name,
        key_prefix="topology_tier_",
    )
    cases = {
        RAW_SENTINEL: raw_get(discovered),
        SENTINEL: hit(shared_stack("topology_", **settings)),
        SENTINEL_TIER: hit(CacheStack.from_tiers([tier])),
        RAW_NODE: raw_get(sentinel.master.client()),
    }
    for case in cases.values():
        assert case() == VALUE
    samples = measure(cases, batches, calls)
    return make_table("shared hit behind Sentinel (local layer NullCache)", samples, RAW_SENTINEL)


def hit_result(
    case: str, table: Table, contender: str, anchor: str, notes: dict[str, Any]
) -> CaseResult:
    """The case of a hit table: ``contender`` within 1.15x of the raw client."""
    target = check(
        case, table, contender, "<= 1.15x the raw floor", short=f"vs {anchor}", at_most=1.15
    )
    return CaseResult(case, [table], [target], notes)


def cluster_throughput(cluster: RedisClusterNodes, rounds: int, seconds: float) -> CaseResult:
    """Throughput at each process count; each checked against 0.85x raw ``RedisCluster``."""
    build = functools.partial(cluster_contenders, cluster, "topology_throughput_")
    assert build()[CLUSTER]() == VALUE  # the miss that writes it
    tables = [
        throughput(
            build,
            count,
            rounds,
            seconds,
            names=(RAW_CLUSTER, CLUSTER),
            title="shared-hit throughput on the Cluster",
        )
        for count in PROCESSES
    ]
    checks = [
        check(
            "cluster_throughput",
            table,
            CLUSTER,
            f">= 0.85x raw with {processes(count)}",
            short=f"{processes(count)}, ops/s vs raw RedisCluster",
            at_least=0.85,
            label=f"{CLUSTER}, {count} proc.",
        )
        for count, table in zip(PROCESSES, tables, strict=True)
    ]
    cores = os.cpu_count() or 1
    notes: dict[str, Any] = {"cores": cores}
    if cores < max(PROCESSES):
        notes["noise"] = NOISE.format(cores=cores)
    return CaseResult("cluster_throughput", tables, checks, notes)


def seconds_of(topology: RedisClusterNodes | RedisSentinelSet) -> float:
    """How long ``topology`` took to start, rounded for the notes."""
    return round(topology.start_seconds or 0.0, 1)


def run(ctx: Context) -> list[CaseResult]:
    """Start the Cluster and the Sentinel set, measure the three cases, stop them."""
    if shutil.which("redis-cli") is None:  # creating the Cluster needs it
        for case in CASES:
            ctx.skipped[case] = f"skipped: {CLI_HINT}"
        return []
    batches, calls = ctx.pick((120, 25), (3, 10))
    rounds, seconds = ctx.pick((10, 0.5), (1, 0.2))
    cluster = RedisClusterNodes(ctx.workdir / "cluster")
    sentinel = RedisSentinelSet(ctx.workdir / "sentinel")
    try:
        cluster.start()
        sentinel.start()
        return [
            hit_result(
                "cluster_hit",
                cluster_hit(cluster, batches, calls),
                CLUSTER,
                "raw RedisCluster",
                {"topology": "3 masters, 3 replicas", "start_seconds": seconds_of(cluster)},
            ),
            hit_result(
                "sentinel_hit",
                sentinel_hit(sentinel, batches, calls),
                SENTINEL,
                "raw Sentinel master_for",
                {
                    "topology": "a master, a replica, 3 sentinels (quorum 2)",
                    "start_seconds": seconds_of(sentinel),
                },
            ),
            cluster_throughput(cluster, rounds, seconds),
        ]
    finally:
        sentinel.stop()
        cluster.stop()
