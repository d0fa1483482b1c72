"""Coherent local tiers behind Sentinel and on Redis Cluster, on the session's topologies.

Two stacks stand in for two instances. Behind Sentinel, the subscription must follow the
master through a failover: after it, another instance's change still reaches the local copy.
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
