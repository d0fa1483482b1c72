"""Coherent local tiers behind Sentinel and on Redis Cluster, on the session's topologies.

Two stacks stand in for two instances. Behind Sentinel, the subscription must follow the
master through a failover: after it, another instance's change still reaches the local copy.
On the Cluster, changes travel on sharded channels in the functions' slots; a failover of
the master owning the hot slot (CLUSTER FAILOVER on the session's cluster, kill -9 on a
private one) is a loss: flushed, then subscribed on the new master.
Timings are printed (``-s``) and bounded loosely: the machine is shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack, cached_for
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_topologies import RedisClusterNodes
from tests.test_invalidation import LONG, gone_within, local, subscribed

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unsigned pickles

FAILOVER_WINDOW = 30.0  # a failover, its detection and the resubscription, on a loaded machine


def sentinel_instance(servers: RedisSentinelSet, prefix: str) -> CacheStack:
    """One instance behind the session's sentinels: a local tier of long timeout above it."""
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_SENTINELS": servers.sentinels,
            "CACHE_REDIS_SENTINEL_MASTER": servers.master_name,
            "CACHE_KEY_PREFIX": prefix,
            "LOCALCACHE_DEFAULT_TIMEOUT": LONG,
        }
    )
    return stack


@pytest.fixture
def sentinel_pair(sentinel: RedisSentinelSet) -> Iterator[tuple[CacheStack, CacheStack]]:
    a, b = sentinel_instance(sentinel, "sinv"), sentinel_instance(sentinel, "sinv")
    subscribed(a)
    subscribed(b)
    yield a, b
    a.close()
    b.close()


def _channel(stack: CacheStack) -> str:
    cache: Any = stack.shared_cache.cache
    return str(cache._channel)


def _subscribers_on(server: Any, channel: str) -> int:
    with server.probe() as client:
        counts = {_text(name): int(n) for name, n in client.pubsub_numsub(channel)}
    return counts.get(channel, 0)


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _reaches(a: CacheStack, b: CacheStack, key: str, timeout: float) -> float:
    """B's change drops A's copy of ``key``: return the seconds it took, retrying B's write.

    B's writes may fail while the master moves; the first that succeeds must reach A.
    """
    began = time.monotonic()
    while True:
        a.set(key, "old")
        assert local(a, key) == "old"
        try:
            b.set(key, "new")
        except Exception:  # the master moving: B retries until a new one takes it
            assert time.monotonic() - began < timeout, "no master took B's write"
            time.sleep(0.05)
            continue
        return gone_within(lambda: local(a, key) is NO_VALUE, timeout)


def _follows(
    sentinel: RedisSentinelSet,
    a: CacheStack,
    b: CacheStack,
    move: Callable[[], Any],
) -> None:
    channel = _channel(a)
    old = sentinel.master
    assert _subscribers_on(old, channel) == 1  # one listener for the process's two stacks
    _reaches(a, b, "before", 2.0)
    began = time.monotonic()
    move()
    new = sentinel.master
    assert new is not old
    deadline = began + FAILOVER_WINDOW
    while _subscribers_on(new, channel) != 1 or a.stats()["invalidation"]["state"] != (
        "subscribed"
    ):
        assert time.monotonic() < deadline, (a.stats()["invalidation"], new)
        time.sleep(0.01)
    print(f"\nsubscribed on the new master {time.monotonic() - began:.2f} s after the move")
    assert a.stats()["invalidation"]["flushes_after_loss"] >= 1  # a new master: a loss
    took = _reaches(a, b, "after", 2.0)
    print(f"a change after the failover reached the other stack in {took * 1000:.2f} ms")
    assert b.get("before") == "new"


def test_the_subscription_follows_a_sentinel_failover(
    sentinel: RedisSentinelSet, sentinel_pair: tuple[CacheStack, CacheStack]
) -> None:
    a, b = sentinel_pair
    _follows(sentinel, a, b, sentinel.failover)


def test_the_subscription_follows_a_killed_master(
    sentinel: RedisSentinelSet, sentinel_pair: tuple[CacheStack, CacheStack]
) -> None:
    a, b = sentinel_pair

    def kill() -> None:
        sentinel.wait_new_master(sentinel.kill_master())

    _follows(sentinel, a, b, kill)


def test_async_code_behind_sentinel_is_kept_coherent(
    sentinel_pair: tuple[CacheStack, CacheStack],
) -> None:
    a, b = sentinel_pair
    prices = {1: "old"}

    @cached_for(hours=1, stack=a)
    async def quote(item: int) -> str:
        return prices[item]

    assert asyncio.run(quote(1)) == "old"
    key = quote.cache_key(1)
    prices[1] = "new"
    asyncio.run(b.aset(key, "new"))
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(quote(1)) == "new"


# -- Redis Cluster ----------------------------------------------------------------------


def cluster_instance(nodes: RedisClusterNodes, prefix: str = "cinv", **keys: Any) -> CacheStack:
    """One instance on the session's Cluster: a local tier of long timeout above it."""
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_CLUSTER": nodes.startup_nodes,
            "CACHE_KEY_PREFIX": prefix,
            "LOCALCACHE_DEFAULT_TIMEOUT": LONG,
            **keys,
        }
    )
    return stack


@pytest.fixture
def cluster_pair(cluster: RedisClusterNodes) -> Iterator[tuple[CacheStack, CacheStack]]:
    a, b = cluster_instance(cluster), cluster_instance(cluster)
    subscribed(a)
    subscribed(b)
    yield a, b
    a.close()
    b.close()


def priced(stack: CacheStack, prices: dict[int, int], name: str = "price") -> Any:
    """The same function (one group, so one channel) in one instance, its channel listened.

    A function decorated after the stack was configured has its channel subscribed from
    then on (its confirmation drops what was cached of it before).
    """

    def price(item: int) -> int:
        return prices[item]

    price.__qualname__ = name
    decorated = cached_for(hours=1, stack=stack)(price)
    watching(stack)
    return decorated


def watching(stack: CacheStack) -> None:
    """Wait until Redis confirmed every channel of the stack (its functions' included)."""
    cache: Any = stack.shared_cache.cache
    subscription = cache._subscription
    deadline = time.monotonic() + 2.0
    while subscription.pending or not subscription.channels <= subscription.listener._confirmed:
        assert time.monotonic() < deadline, (subscription.channels, subscription.pending)
        time.sleep(0.002)


@pytest.mark.parametrize("change", ["set", "delete", "invalidate", "clear_cache", "clear"])
def test_cluster_another_instance_change_drops_the_local_copy(
    cluster_pair: tuple[CacheStack, CacheStack], change: str
) -> None:
    a, b = cluster_pair
    prices = {42: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    assert price_a(42) == 1
    key = price_a.cache_key(42)
    assert local(a, key) == 1
    prices[42] = 2
    changes: dict[str, Callable[[], object]] = {
        "set": lambda: price_b.set(2, 42),
        "delete": lambda: b.delete(key),
        "invalidate": lambda: price_b.invalidate(42),
        "clear_cache": price_b.clear_cache,
        "clear": b.clear,
    }
    changes[change]()
    took = gone_within(lambda: local(a, key) is NO_VALUE)
    print(f"{change}: A's copy gone {took * 1000:.2f} ms after B's change returned")
    assert price_a(42) == 2
    assert a.stats()["invalidation"]["received"] >= 1


def test_cluster_a_function_write_is_announced_in_its_slot_transaction(
    cluster_pair: tuple[CacheStack, CacheStack], cluster: RedisClusterNodes
) -> None:
    a, b = cluster_pair
    price_a, price_b = priced(a, {1: 1}), priced(b, {1: 1})
    price_a(1)
    key = price_a.cache_key(1)
    owner = cluster.master_for_slot(cluster.keyslot(f"cinv:{key}"))
    owner.reset_stats()
    price_b.set(5, 1)
    gone_within(lambda: local(a, key) is NO_VALUE)
    counts = owner.command_counts()
    assert counts.get("spublish") == 1  # on the node of the function's slot
    assert counts.get("exec") == 1  # in the write's MULTI/EXEC
    assert "publish" not in counts


def test_cluster_plain_keys_tags_and_a_function_decorated_later(
    cluster_pair: tuple[CacheStack, CacheStack],
) -> None:
    a, b = cluster_pair
    a.set("plain", "old")
    b.set("plain", "new")  # no function: announced on the stack's channel, after the write
    gone_within(lambda: local(a, "plain") is NO_VALUE)
    assert a.get("plain") == "new"
    before = a.stats()["invalidation"]["received"]

    @cached_for(hours=1, stack=a)  # its channel confirmed before the decorator returns
    def later(item: int) -> int:
        return 1

    assert a.stats()["invalidation"]["received"] == before + 1  # dropped its nothing once
    assert later(1) == 1
    key = later.cache_key(1)
    time.sleep(0.2)
    assert local(a, key) == 1  # no late drop of what was cached after the decoration
    b.set(key, 2)  # the function's key, written with no group: on the stack's channel
    gone_within(lambda: local(a, key) is NO_VALUE)

    @cached_for(hours=1, stack=a, tags=["user:{user}"])
    def owner_a(user: int) -> str:
        return "ann"

    owner_a(1)
    assert b.invalidate_tags("user:1") == 1
    gone_within(lambda: local(a, owner_a.cache_key(1)) is NO_VALUE)


def test_cluster_failover_of_the_hot_slot_master(
    cluster: RedisClusterNodes, cluster_pair: tuple[CacheStack, CacheStack]
) -> None:
    a, b = cluster_pair
    prices = {7: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    price_a(7)
    key = price_a.cache_key(7)
    master = cluster.master_for_slot(cluster.keyslot(f"cinv:{key}"))
    replica = cluster.replica_of(master)
    began = time.monotonic()
    cluster.failover(replica)  # CLUSTER FAILOVER: the old master stays up, a replica
    _resubscribed(a, began)
    assert cluster.master_for_slot(cluster.keyslot(f"cinv:{key}")) is replica
    assert a.stats()["invalidation"]["flushes_after_loss"] >= 1
    assert local(a, key) is NO_VALUE  # flushed: it may have missed a change
    took = _changed_reaches(price_a, price_b, a, 7)
    print(f"a change after the failover reached the other stack in {took * 1000:.2f} ms")


def test_cluster_killed_hot_slot_master(
    make_redis_cluster: Callable[..., RedisClusterNodes],
) -> None:
    private = make_redis_cluster()  # the session's cluster keeps its masters alive
    a, b = cluster_instance(private), cluster_instance(private)
    subscribed(a)
    subscribed(b)
    prices = {7: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    price_a(7)
    key = price_a.cache_key(7)
    master = private.master_for_slot(private.keyslot(f"cinv:{key}"))
    replica = private.replica_of(master)
    began = time.monotonic()
    private.kill(master)
    gone_within(lambda: a.stats()["invalidation"]["state"] == "lost", FAILOVER_WINDOW)
    assert local(a, key) is NO_VALUE
    private.wait_promoted(replica)
    _resubscribed(a, began)
    took = _changed_reaches(price_a, price_b, a, 7)
    print(f"a change after the promotion reached the other stack in {took * 1000:.2f} ms")
    a.close()
    b.close()


def _resubscribed(stack: CacheStack, began: float) -> None:
    deadline = began + FAILOVER_WINDOW
    counts = stack.stats()["invalidation"]
    while counts["flushes_after_loss"] == 0 or counts["state"] != "subscribed":
        assert time.monotonic() < deadline, counts
        time.sleep(0.01)
        counts = stack.stats()["invalidation"]
    print(f"\nsubscribed again {time.monotonic() - began:.2f} s after the change of master began")


def _changed_reaches(price_a: Any, price_b: Any, a: CacheStack, item: int) -> float:
    """A's fresh copy of ``item`` goes when B changes it (B retried while the slot moves)."""
    deadline = time.monotonic() + FAILOVER_WINDOW
    while True:
        try:
            price_a(item)
            price_b.set(99, item)
        except Exception:  # a failure refreshes the client's slot map: the next call finds it
            assert time.monotonic() < deadline, "no master took B's write"
            time.sleep(0.05)
            continue
        took = gone_within(lambda: local(a, price_a.cache_key(item)) is NO_VALUE)
        assert price_a(item) == 99
        return took


def test_cluster_async_code_is_kept_coherent(cluster_pair: tuple[CacheStack, CacheStack]) -> None:
    a, b = cluster_pair
    prices = {1: "old"}

    def stacked(stack: CacheStack) -> Any:
        async def quote(item: int) -> str:
            return prices[item]

        decorated = cached_for(hours=1, stack=stack)(quote)
        watching(stack)
        return decorated

    quote_a, quote_b = stacked(a), stacked(b)
    key = quote_a.cache_key(1)
    assert asyncio.run(quote_a(1)) == "old"
    prices[1] = "new"
    asyncio.run(b.aset(key, "new"))  # no function: the stack's channel, after the write
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(quote_a(1)) == "new"
    prices[1] = "newer"
    asyncio.run(b.adelete(key))
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(quote_b(1)) == "newer"  # B's tracked write, on the function's channel
    assert asyncio.run(quote_a(1)) == "newer"
    prices[1] = "newest"
    asyncio.run(quote_b.invalidate(1))  # awaited: the function is async
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(quote_a(1)) == "newest"


def test_cluster_the_hot_slot_moving_is_followed(
    cluster: RedisClusterNodes, cluster_pair: tuple[CacheStack, CacheStack]
) -> None:
    a, b = cluster_pair
    prices = {3: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    price_a(3)
    key = price_a.cache_key(3)
    slot = cluster.keyslot(f"cinv:{key}")
    source = cluster.master_for_slot(slot)
    target = next(master for master in cluster.masters if master is not source)
    began = time.monotonic()
    cluster.move_slot(slot, target, batch=10, pause=0.0)
    _resubscribed(a, began)
    assert local(a, key) is NO_VALUE  # flushed: it may have missed a change
    took = _changed_reaches(price_a, price_b, a, 3)
    print(f"a change after the move reached the other stack in {took * 1000:.2f} ms")
    assert _shard_subscribers(target, price_a) == 1  # this process's one listener


def _shard_subscribers(node: Any, function: Any) -> int:
    channel = f"__stratacache__:invalidate:cinv:{{{function.__module__}.{function.__qualname__}}}"
    with node.probe() as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    return int(reply[1])


def test_cluster_info_counts_the_sharded_subscribers(
    cluster_pair: tuple[CacheStack, CacheStack],
) -> None:
    a, _ = cluster_pair
    cache: Any = a.shared_cache.cache
    shared = cache.describe()
    assert shared["invalidation"] == "auto"
    assert shared["invalidation_channel"] == "__stratacache__:invalidate:0:cinv:"
    assert shared["invalidation_subscribers"] == 1  # both stacks share this process's listener


def test_cluster_frozen_hot_slot_master(
    make_redis_cluster: Callable[..., RedisClusterNodes],
) -> None:
    private = make_redis_cluster()  # SIGSTOP may make the cluster fail over: not the session's
    a, b = cluster_instance(private), cluster_instance(private)
    subscribed(a)
    subscribed(b)
    prices = {5: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    price_a(5)
    key = price_a.cache_key(5)
    master = private.master_for_slot(private.keyslot(f"cinv:{key}"))
    began = time.monotonic()
    master.pause()
    try:  # found by its own connection's PING: 0.5 s of silence, then the read timeout
        gone_within(lambda: a.stats()["invalidation"]["state"] == "lost", FAILOVER_WINDOW)
        found = time.monotonic() - began
        assert local(a, key) is NO_VALUE
    finally:
        master.resume()
    print(f"\nthe frozen master was found in {found:.2f} s")
    _resubscribed(a, began)
    took = _changed_reaches(price_a, price_b, a, 5)
    print(f"a change after SIGCONT reached the other stack in {took * 1000:.2f} ms")
    a.close()
    b.close()
