"""Tags: ``cached_for(tags=[...])`` and ``invalidate_tags``, across functions, tiers and topologies.

Against real redis-servers: a single server (one round trip per tag) and the session's
Cluster (a fan-out over the tagged functions, whose entries live in different slots).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest
import redis
from redis.crc import key_slot

import stratacache
from stratacache import CacheStack, TierSpecOf, cached_for
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic
from stratacache_plugins.simple import SimpleCache
from tests.redis_server import RedisServer
from tests.redis_topologies import RedisClusterNodes
from tests.test_backend_base import MinimalCache

_prefixes = itertools.count()


def fresh_prefix() -> str:
    """A key prefix no other test uses: the session's servers are shared."""
    return f"tag{next(_prefixes)}_"


class Users:
    """Two functions tagged with the user they read, and their calls."""

    def __init__(self, stack: CacheStack) -> None:
        self.calls: list[tuple[str, int]] = []

        @cached_for(minutes=5, tags=["user:{user_id}"], stack=stack)
        def profile(user_id: int) -> dict[str, int]:
            self.calls.append(("profile", user_id))
            return {"id": user_id}

        @cached_for(minutes=5, tags=["user:{user_id}", "team:{team}"], stack=stack)
        def orders(user_id: int, team: int = 0) -> list[int]:
            self.calls.append(("orders", user_id))
            return [user_id, team]

        self.profile, self.orders = profile, orders

    def read(self, *users: int) -> None:
        for user in users:
            self.profile(user)
            self.orders(user)


def test_a_tag_removes_the_entries_of_every_function_carrying_it() -> None:
    stack = CacheStack.from_tiers([SimpleCache()])
    users = Users(stack)
    users.read(42, 7)
    assert stack.invalidate_tags("user:42") == 2
    users.calls.clear()
    users.read(42, 7)
    assert users.calls == [("profile", 42), ("orders", 42)], "user 7's entries stayed"


def test_several_tags_at_once_and_a_tag_no_entry_carries() -> None:
    stack = CacheStack.from_tiers([SimpleCache()])
    users = Users(stack)
    users.read(1, 2, 3)
    assert stack.invalidate_tags("team:0", "user:1") == 4, "orders of 1, 2, 3; profile of 1"
    assert stack.invalidate_tags("user:99") == 0


def test_invalidate_tags_takes_tags_as_separate_strings() -> None:
    stack = CacheStack.from_tiers([SimpleCache()])
    with pytest.raises(TypeError, match=r"takes tags as separate non-empty strings, got \["):
        stack.invalidate_tags(["user:1"])  # type: ignore[arg-type]


def test_the_default_stack_and_its_module_functions() -> None:
    stratacache.configure(CACHE_TYPE="SimpleCache")
    calls: list[int] = []

    @cached_for(minutes=5, tags=["item:{item}"])
    def item(item: int) -> int:
        calls.append(item)
        return item

    item(1)
    assert stratacache.invalidate_tags("item:1") == 2, "the local tier and the shared one"
    item(1)
    assert asyncio.run(stratacache.ainvalidate_tags("item:1")) == 2
    assert calls == [1, 1]


def redis_stack(url: str, prefix: str) -> CacheStack:
    """Memory over Redis; without the invalidation channel, so tags alone are seen at work."""
    return CacheStack.from_tiers(
        [
            TierSpecOf(SimpleCache(), name="memory"),
            TierSpecOf(RedisCache(url=url, key_prefix=prefix, invalidation="off"), name="redis"),
        ]
    )


def test_tags_reach_every_tier_local_over_redis(redis_url: str) -> None:
    stack = redis_stack(redis_url, fresh_prefix())
    users = Users(stack)
    users.read(42, 7)
    memory, shared = stack.tier("memory").cache, stack.tier("redis").cache
    key = users.profile.cache_key(42)
    assert memory.get(key) == shared.get(key) == {"id": 42}
    assert stack.invalidate_tags("user:42") == 4, "two functions in two tiers"
    assert memory.get(key) is None
    assert shared.get(key) is None
    assert shared.get(users.profile.cache_key(7)) == {"id": 7}


def test_a_fill_from_redis_carries_the_tags_into_the_local_tier(redis_url: str) -> None:
    prefix = fresh_prefix()
    writer, reader = redis_stack(redis_url, prefix), redis_stack(redis_url, prefix)
    Users(writer).read(5)
    readers = Users(reader)
    readers.read(5)
    assert readers.calls == [], "served by Redis, and copied into the reader's memory"
    assert reader.invalidate_tags("user:5") == 4
    readers.read(5)
    assert readers.calls == [("profile", 5), ("orders", 5)]


def test_another_process_invalidation_reaches_the_shared_tier(redis_url: str) -> None:
    """The entries one stack wrote are removed by a tag another stack invalidates.

    (Copies in the writer's own memory stay until the invalidation channel carries it.)
    """
    prefix = fresh_prefix()
    writer = CacheStack.from_tiers([RedisCache(url=redis_url, key_prefix=prefix)])
    other = CacheStack.from_tiers([RedisCache(url=redis_url, key_prefix=prefix)])
    users = Users(writer)
    users.read(8)
    assert other.invalidate_tags("user:8") == 2, "no function decorated in this stack"
    users.calls.clear()
    users.read(8)
    assert users.calls == [("profile", 8), ("orders", 8)]


class CountingConnection(redis.Connection):
    """Counts the requests sent: one per command, one per pipeline."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def test_on_one_server_a_tag_is_one_round_trip(redis_server: RedisServer) -> None:
    pool = redis.ConnectionPool.from_url(redis_server.url, connection_class=CountingConnection)
    stack = CacheStack.from_tiers(
        [RedisCache(host=redis.Redis(connection_pool=pool), key_prefix=fresh_prefix())]
    )
    users = Users(stack)
    users.read(1, 2)
    CountingConnection.sent = 0
    users.profile(3)
    assert CountingConnection.sent == 2, "a GET, then one transaction: entry, tracking, tags"
    CountingConnection.sent = 0
    assert stack.invalidate_tags("user:1") == 2
    assert CountingConnection.sent == 1
    users.read(3)
    CountingConnection.sent = 0
    assert stack.invalidate_tags("user:2", "team:0") == 3, "user 2's two, orders of 3"
    assert CountingConnection.sent == 2, "one per tag"


def test_a_tag_set_is_bounded_by_its_live_entries(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    stack = CacheStack.from_tiers([RedisCache(url=redis_server.url, key_prefix=prefix)])

    @cached_for(seconds=1, tags=["all"], stack=stack)
    def short(x: int) -> int:
        return x

    @cached_for(minutes=5, tags=["all"], stack=stack)
    def long(x: int) -> int:
        return x

    client = redis_server.client()
    group = short.cache_key(0)[1 : short.cache_key(0).index("}")]
    tag_set = f"{prefix}{{{group}}}:__tag__:all"
    for x in range(5):
        short(x)
    assert client.zcard(tag_set) == 5
    assert 0 < client.pttl(tag_set) <= 1000, "the set lives as long as its longest member"
    time.sleep(1.1)
    short(99)
    assert client.zcard(tag_set) == 1, "a write drops the members whose entries expired"
    long(1)
    assert stack.invalidate_tags("all") == 2


def test_on_a_cluster_a_tag_fans_out_over_the_tagged_functions(
    redis_cluster: RedisClusterNodes,
) -> None:
    stack = CacheStack.from_tiers(
        [
            TierSpecOf(SimpleCache(), name="memory"),
            TierSpecOf(
                RedisCache(cluster=redis_cluster.startup_nodes, key_prefix=fresh_prefix()),
                name="redis",
            ),
        ]
    )
    users = Users(stack)
    users.read(42, 7)
    keys = [users.profile.cache_key(42), users.orders.cache_key(42)]
    assert len({key_slot(key.encode()) for key in keys}) == 2, "two functions, two slots"
    assert stack.invalidate_tags("user:42") == 4
    shared = stack.tier("redis").cache
    assert shared.get(users.profile.cache_key(42)) is None
    assert shared.get(users.orders.cache_key(42)) is None
    assert shared.get(users.orders.cache_key(7)) == [7, 0]
    users.calls.clear()
    users.read(42, 7)
    assert users.calls == [("profile", 42), ("orders", 42)]


def test_async_functions_and_ainvalidate_tags(redis_url: str) -> None:
    stack = redis_stack(redis_url, fresh_prefix())
    calls: list[int] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], stack=stack)
    async def profile(user_id: int) -> int:
        calls.append(user_id)
        return user_id

    async def main() -> None:
        await profile(1)
        await profile(2)
        assert await stack.ainvalidate_tags("user:1") == 2
        await profile(1)
        await profile(2)

    asyncio.run(main())
    assert calls == [1, 2, 1]


def test_a_computation_running_during_the_invalidation_is_not_written() -> None:
    stack = CacheStack.from_tiers([SimpleCache()])
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], stack=stack)
    def slow(user_id: int) -> int:
        calls.append(user_id)
        started.set()
        release.wait(5)
        return len(calls)

    worker = threading.Thread(target=slow, args=(1,))
    worker.start()
    assert started.wait(5)
    stack.invalidate_tags("user:1")
    release.set()
    worker.join()
    assert slow(1) == 2, "the value computed from the invalidated data was not stored"


@pytest.mark.parametrize(
    "make_backend",
    [SimpleCache, MinimalCache, "filesystem"],
    ids=["SimpleCache", "third-party-defaults", "FileSystemCache"],
)
def test_every_backend_serves_tags(make_backend: Any, tmp_path: Any) -> None:
    backend = FileSystemCache(str(tmp_path)) if make_backend == "filesystem" else make_backend()
    stack = CacheStack.from_tiers([backend])
    users = Users(stack)
    users.read(1, 2)
    assert stack.invalidate_tags("user:1") == 2
    users.calls.clear()
    users.read(1, 2)
    assert users.calls == [("profile", 1), ("orders", 1)]


def test_simplecache_index_never_outgrows_the_cache() -> None:
    cache = SimpleCache(threshold=3)
    for x in range(10):
        cache.set_tagged(f"k{x}", x, None, "g", (f"t{x}", "all"))
    assert len(cache) == 3
    assert sorted(cache._entry_tags) == ["k7", "k8", "k9"]
    assert cache._tags["all"] == {"k7", "k8", "k9"}
    assert cache.invalidate_tag("t1") == 0, "k1 was evicted: its tags went with it"
    cache.delete("k7")
    cache.set("k8", "untagged now")
    assert cache._tags == {"all": {"k9"}, "t9": {"k9"}}


def test_async_tags_on_a_cluster(redis_cluster: RedisClusterNodes) -> None:
    stack = CacheStack.from_tiers(
        [RedisCache(cluster=redis_cluster.startup_nodes, key_prefix=fresh_prefix())]
    )
    calls: list[tuple[str, int]] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], stack=stack)
    async def profile(user_id: int) -> int:
        calls.append(("profile", user_id))
        return user_id

    @cached_for(minutes=5, tags=["user:{user_id}"], stack=stack)
    async def orders(user_id: int) -> list[int]:
        calls.append(("orders", user_id))
        return [user_id]

    async def main() -> None:
        for user in (1, 2):
            await profile(user)
            await orders(user)
        assert await stack.ainvalidate_tags("user:1") == 2
        for user in (1, 2):
            await profile(user)
            await orders(user)

    asyncio.run(main())
    assert calls[4:] == [("profile", 1), ("orders", 1)]


def test_a_redis_subclass_overriding_set_sees_tagged_writes(redis_url: str) -> None:
    seen: list[str] = []

    class Watching(RedisCache):
        def set(self, key: str, value: Any, timeout: Any = None) -> bool:
            seen.append(key)
            return super().set(key, value, timeout)

    stack = CacheStack.from_tiers([Watching(url=redis_url, key_prefix=fresh_prefix())])
    users = Users(stack)
    users.read(1)
    assert users.profile.cache_key(1) in seen
    assert stack.invalidate_tags("user:1") == 2
    users.calls.clear()
    users.read(1)
    assert users.calls == [("profile", 1), ("orders", 1)]


# -- tags with atomic_writes: written in the coordinated commit ---------------------------


def atomic_stack(url: str | None = None, cluster: Any = None) -> CacheStack:
    shared = (
        RedisCacheAtomic(url=url, key_prefix=fresh_prefix(), invalidation="off")
        if cluster is None
        else RedisCacheAtomic(cluster=cluster, key_prefix=fresh_prefix(), invalidation="off")
    )
    return CacheStack.from_tiers(
        [TierSpecOf(SimpleCache(), name="memory"), TierSpecOf(shared, name="redis")]
    )


@pytest.mark.parametrize("mode", ["at_most_once", "at_least_once"])
def test_tags_with_atomic_writes_are_written_in_the_commit(redis_url: str, mode: str) -> None:
    stack = atomic_stack(redis_url)
    calls: list[int] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], atomic_writes=mode, stack=stack)
    def profile(user_id: int) -> int:
        calls.append(user_id)
        return user_id

    assert [profile(1), profile(2), profile(1)] == [1, 2, 1]
    shared = stack.tier("redis").cache
    key = profile.cache_key(1)
    assert shared.get(key) == 1, "committed by the atomic write"
    assert stack.invalidate_tags("user:1") == 2, "both tiers' entries carried the tag"
    assert shared.get(key) is None
    assert shared.get(profile.cache_key(2)) == 2
    assert [profile(1), profile(2)] == [1, 2]
    assert calls == [1, 2, 1]


def test_tags_with_atomic_writes_on_a_cluster(redis_cluster: RedisClusterNodes) -> None:
    stack = atomic_stack(cluster=redis_cluster.startup_nodes)
    users: list[int] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], atomic_writes="at_most_once", stack=stack)
    def profile(user_id: int) -> int:
        users.append(user_id)
        return user_id

    @cached_for(minutes=5, tags=["user:{user_id}"], atomic_writes="at_most_once", stack=stack)
    def orders(user_id: int) -> list[int]:
        return [user_id]

    profile(42)
    orders(42)
    keys = [profile.cache_key(42), orders.cache_key(42)]
    assert len({key_slot(key.encode()) for key in keys}) == 2, "two functions, two slots"
    assert stack.invalidate_tags("user:42") == 4
    shared = stack.tier("redis").cache
    assert [shared.get(key) for key in keys] == [None, None]


def test_async_tags_with_atomic_writes(redis_url: str) -> None:
    stack = atomic_stack(redis_url)
    calls: list[int] = []

    @cached_for(minutes=5, tags=["user:{user_id}"], atomic_writes="at_most_once", stack=stack)
    async def profile(user_id: int) -> int:
        calls.append(user_id)
        return user_id

    async def main() -> None:
        await profile(1)
        await profile(2)
        assert await stack.ainvalidate_tags("user:1") == 2
        await profile(1)
        await profile(2)

    asyncio.run(main())
    assert calls == [1, 2, 1]
