"""The Redis backends under ``async def`` code: native ``redis.asyncio`` tiers.

The async conformance suites run on one server, a Cluster and a Sentinel master; then
what is particular to asyncio: a client per event loop, closed with its loop, and no
worker thread on the way.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import redis

from stratacache import NO_VALUE, Backend, CacheStack, cached_for
from stratacache.testing.asyncsuite import AsyncBackendConformance, AsyncStackConformance, run
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_server import RedisServer
from tests.redis_topologies import RedisClusterNodes

_prefixes = itertools.count()


def fresh_prefix() -> str:
    """A key prefix no other test uses: the session's topologies are shared."""
    return f"a{next(_prefixes)}_"


BACKENDS = [RedisCache, RedisCacheNoExceptions, RedisCacheAtomic]


@pytest.mark.parametrize("backend_class", BACKENDS)
class TestAsyncOnOneServer(AsyncBackendConformance):
    @pytest.fixture
    def make_backend(self, redis_url: str, backend_class: type[RedisCache]) -> Callable[..., Any]:
        return lambda **options: backend_class(url=redis_url, **options)


@pytest.mark.parametrize("backend_class", BACKENDS)
class TestAsyncOnACluster(AsyncBackendConformance):
    @pytest.fixture
    def make_backend(
        self, redis_cluster: RedisClusterNodes, backend_class: type[RedisCache]
    ) -> Callable[..., Any]:
        prefix = fresh_prefix()
        return lambda **options: backend_class(
            cluster=redis_cluster.startup_nodes, key_prefix=prefix, **options
        )


@pytest.mark.parametrize("backend_class", [RedisCache, RedisCacheAtomic])
class TestAsyncOnASentinelMaster(AsyncBackendConformance):
    @pytest.fixture
    def make_backend(
        self, redis_sentinel: RedisSentinelSet, backend_class: type[RedisCache]
    ) -> Callable[..., Any]:
        prefix = fresh_prefix()
        return lambda **options: backend_class(
            sentinels=redis_sentinel.sentinels,
            sentinel_master=redis_sentinel.master_name,
            key_prefix=prefix,
            **options,
        )


class TestAsyncSignedRedis(AsyncBackendConformance):
    """Signing: the async operations sign and verify as the sync ones do."""

    @pytest.fixture
    def make_backend(self, redis_url: str) -> Callable[..., Any]:
        return lambda **options: RedisCacheNoExceptions(
            url=redis_url, secret_key="a-secret-of-at-least-16-bytes", **options
        )


class TestAsyncStackOnRedis(AsyncStackConformance):
    @pytest.fixture
    def make_stack(self, redis_url: str) -> Callable[[], CacheStack]:
        def make() -> CacheStack:
            stack = CacheStack()
            stack.configure({"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_REDIS_URL": redis_url})
            return stack

        return make


class TestAsyncStackOnACluster(AsyncStackConformance):
    @pytest.fixture
    def make_stack(self, redis_cluster: RedisClusterNodes) -> Callable[[], CacheStack]:
        prefix = fresh_prefix()
        return lambda: CacheStack.from_tiers(
            [
                SimpleCache(),
                RedisCacheAtomic(cluster=redis_cluster.startup_nodes, key_prefix=prefix),
            ]
        )


class TestAsyncStackOfThreeTiers(AsyncStackConformance):
    """memory > disk (a sync backend, in threads) > redis (native)."""

    @pytest.fixture
    def make_stack(self, redis_url: str, tmp_path: Any) -> Callable[[], CacheStack]:
        def make() -> CacheStack:
            stack = CacheStack()
            stack.configure(
                {
                    "CACHE_LAYERS": [
                        {"type": "SimpleCache", "name": "memory"},
                        {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path)},
                        {"type": "RedisCache", "name": "redis", "url": redis_url},
                    ]
                }
            )
            return stack

        return make


# -- what asyncio adds ---------------------------------------------------------------------


def test_the_redis_backends_serve_async_code_natively(redis_url: str) -> None:
    stack = CacheStack.from_tiers([SimpleCache(), RedisCache(url=redis_url)])
    assert [t.native_async for t in stack.tiers if not t.cache.in_process] == [True]
    threads: set[str] = set()
    original = RedisCache._acall

    async def spy(self: RedisCache, action: Any) -> Any:
        threads.add(threading.current_thread().name)
        return await original(self, action)

    @cached_for(minutes=1, stack=stack)
    async def f(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x

    def refuse(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async call went through the synchronous client")

    original_run = RedisCache._run
    RedisCache._acall, RedisCache._run = spy, refuse  # type: ignore[method-assign]
    try:

        async def main() -> tuple[int, str]:
            return await f(1), threading.current_thread().name

        value, loop_thread = asyncio.run(main())
    finally:
        RedisCache._acall, RedisCache._run = original, original_run  # type: ignore[method-assign]
    assert value == 1
    assert threads == {loop_thread}, "every Redis call ran on the loop's own thread"


def connected(server_url: str) -> int:
    return int(redis.Redis.from_url(server_url).info("clients")["connected_clients"])


def test_a_client_per_loop_closed_with_its_loop(redis_server: RedisServer) -> None:
    backend = RedisCacheNoExceptions(url=redis_server.url, key_prefix=fresh_prefix())
    before = connected(redis_server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for i in range(20):  # asyncio.run() twenty times: a loop each, as test runners do

            async def main(i: int = i) -> Any:
                await asyncio.gather(*(backend.aset_tracked(f"k{j}", j, 60) for j in range(5)))
                return await backend.alookup("k4")

            assert asyncio.run(main()) == 4
        gc.collect()
    assert connected(redis_server.url) <= before + 1, "each loop closed its connections"


def test_loops_in_threads_each_get_their_own_client(redis_url: str) -> None:
    backend = RedisCache(url=redis_url, key_prefix=fresh_prefix())
    results: dict[int, Any] = {}

    def worker(n: int) -> None:
        async def main() -> Any:
            await backend.aset_tracked(f"t{n}", n, 60)
            return [await backend.alookup(f"t{n}") for _ in range(20)]

        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: [n] * 20 for n in range(4)}


def test_a_redis_cache_raises_and_no_exceptions_falls_back_when_down(tmp_path: Any) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with pytest.raises(Exception, match="Redis GET failed"):
        run(lambda: RedisCache(url=dead).alookup("k"))
    quiet = RedisCacheNoExceptions(url=dead, retry_interval=60)
    assert run(lambda: quiet.aset_tracked("k", 1, 60)) is False
    assert run(lambda: quiet.alookup("k")) is NO_VALUE  # skipped in the back-off
    assert quiet.stats.errors == 2


def test_an_unreadable_entry_is_a_miss_and_deleted(redis_url: str) -> None:
    backend = RedisCacheNoExceptions(url=redis_url, key_prefix="bad:")
    redis.Redis.from_url(redis_url).set("bad:k", b"\x80not a pickle")
    assert run(lambda: backend.alookup("k")) is NO_VALUE
    assert backend.stats.deserialization_failures == 1
    assert redis.Redis.from_url(redis_url).exists("bad:k") == 0


def test_an_async_tracked_write_survives_a_script_flush(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = fresh_prefix()
    backend = RedisCache(url=redis_url, key_prefix=prefix)
    assert run(lambda: backend.aset_tracked("a", 1, 60, "g")) is True
    raw.script_flush()  # as after a restart or a failover: EVALSHA answers NOSCRIPT
    assert run(lambda: backend.aset_tracked("b", 2, 60, "g")) is True
    assert run(lambda: backend.alookup("b")) == 2
    assert backend.clear_tracked("g") == 2, "both tracked"


def test_a_user_client_is_run_in_threads(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    backend: Backend = RedisCache(client, key_prefix=fresh_prefix())
    run(lambda: backend.aset_tracked("k", {"v": 1}, 60))
    assert run(lambda: backend.alookup("k")) == {"v": 1}


@pytest.mark.parametrize("atomic", [None, "at_most_once"])
def test_a_thousand_tasks_on_one_cold_key_compute_once_over_redis(
    redis_url: str, atomic: str | None
) -> None:
    # Generous timeouts: the point is single flight. With the defaults, a burst of a thousand
    # tasks on a loaded machine once met "Timeout connecting", and an outage of the shared
    # tier (its back-off, the recovery of the writes it missed) may rightly compute again:
    # that says nothing of single flight.
    shared = RedisCacheAtomic(
        url=redis_url, key_prefix=fresh_prefix(), connect_timeout=10, read_timeout=10
    )
    stack = CacheStack.from_tiers([SimpleCache(), shared])
    calls: list[int] = []

    @cached_for(minutes=5, stack=stack, atomic_writes=atomic)  # type: ignore[arg-type]
    async def slow(n: int) -> dict[str, int]:
        calls.append(n)
        await asyncio.sleep(0.05)
        return {"n": n}

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(slow(7) for _ in range(1000))))

    results = asyncio.run(main())
    assert calls == [7]
    assert all(result == {"n": 7} for result in results)


def test_a_burst_wider_than_the_pool_waits_for_connections(redis_url: str) -> None:
    # A caller waits for a connection within its command's deadline (the connect and read
    # timeouts): with the defaults (1.5 s), 300 commands queued on 4 connections outwaited it
    # on a loaded machine. The point here is that they wait, not fail at once.
    backend = RedisCacheNoExceptions(
        url=redis_url, key_prefix=fresh_prefix(), max_connections=4, read_timeout=10
    )

    async def main() -> list[Any]:
        await asyncio.gather(*(backend.aset_tracked(f"b{i}", i, 60) for i in range(300)))
        return list(await asyncio.gather(*(backend.alookup(f"b{i}") for i in range(300))))

    assert asyncio.run(main()) == list(range(300))
    assert backend.stats.errors == 0, "a full pool is not an outage"


def test_an_at_most_once_wait_is_awaited_on_the_loop_thread(redis_url: str) -> None:
    backend = RedisCacheAtomic(url=redis_url, key_prefix=fresh_prefix(), lock_wait=5)
    stack = CacheStack.from_tiers([SimpleCache(), backend])

    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    async def quote(n: int) -> str:
        raise AssertionError("another process holds the lock and computes it")

    key = quote.cache_key(1)
    raw = redis.Redis.from_url(redis_url)
    raw.set(backend._lock_key(key), "another-process", px=5000)  # its holder, elsewhere

    stored = backend._dumps(key, "theirs")

    def holder_commits() -> None:
        time.sleep(0.3)
        raw.set(backend._key(key), stored)

    threads: set[str] = set()
    original_run, original_sync = RedisCacheAtomic._arun, RedisCacheAtomic._run

    async def spy(self: RedisCacheAtomic, *args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return await original_run(self, *args, **kwargs)

    def refuse(self: RedisCacheAtomic, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async wait used the synchronous client")

    async def main() -> tuple[str, str]:
        return await quote(1), threading.current_thread().name

    committer = threading.Thread(target=holder_commits)
    RedisCacheAtomic._arun, RedisCacheAtomic._run = spy, refuse  # type: ignore[method-assign]
    try:
        committer.start()
        value, loop_thread = asyncio.run(main())
    finally:
        RedisCacheAtomic._arun, RedisCacheAtomic._run = original_run, original_sync  # type: ignore[method-assign]
        committer.join(5)
    assert value == "theirs"
    assert threads == {loop_thread}
    assert backend.stats.lock_waits == 1


# -- lifecycles: loops, retirement, cancellation -------------------------------------------


def test_a_finished_loop_leaves_nothing_behind(redis_url: str) -> None:
    from stratacache_plugins.rediscache import aioclient

    backend = RedisCache(url=redis_url, key_prefix=fresh_prefix())
    for i in range(30):
        assert run(lambda i=i: backend.aset_tracked(f"k{i}", i, 60)) is True  # type: ignore[misc]
    assert len(aioclient._loops) == 0, "each loop's clients went with it"


def test_a_loop_closed_without_its_shutdown_is_dropped_at_the_next(redis_url: str) -> None:
    from stratacache_plugins.rediscache import aioclient

    backend = RedisCache(url=redis_url, key_prefix=fresh_prefix())
    loop = asyncio.new_event_loop()
    loop.run_until_complete(backend.aset_tracked("k", 1, 60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # what such a loop leaves to the GC
        loop.close()  # no shutdown_asyncgens: the record stays until another loop comes
        assert run(lambda: backend.alookup("k")) == 1
        assert loop not in aioclient._loops
        gc.collect()


def test_close_while_calls_run_lets_them_finish(redis_server: RedisServer) -> None:
    backend = RedisCacheNoExceptions(url=redis_server.url, key_prefix=fresh_prefix())
    backend.set("k", "v", 60)
    slow = threading.Thread(
        target=lambda: redis_server.client().execute_command("DEBUG", "SLEEP", "0.3")
    )

    async def main() -> list[Any]:
        slow.start()
        await asyncio.sleep(0.05)  # the server sleeps: the calls below wait for replies
        calls = [asyncio.ensure_future(backend.alookup("k")) for _ in range(50)]
        await asyncio.sleep(0.05)  # they are under way
        backend.close()  # a reconfiguration replaced it
        return list(await asyncio.gather(*calls))

    try:
        assert asyncio.run(main()) == ["v"] * 50
    finally:
        slow.join(5)
    assert backend.stats.errors == 0


def test_close_on_an_idle_loop_closes_its_connections_with_it(redis_server: RedisServer) -> None:
    backend = RedisCache(url=redis_server.url, key_prefix=fresh_prefix())
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(backend.aset_tracked("k", 1, 60)) is True
        backend.close()  # the loop is idle: the clients go when it runs again or shuts down
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    gc.collect()  # an unclosed connection would warn here, and warnings are errors


def test_a_cancelled_caller_releases_the_at_most_once_lock(redis_url: str) -> None:
    backend = RedisCacheAtomic(url=redis_url, key_prefix=fresh_prefix(), lock_timeout=30)
    raw = redis.Redis.from_url(redis_url)
    lock = backend._lock_key("{g}k")
    original = RedisCacheAtomic.alookup
    held = asyncio.Event()

    async def stalled(self: RedisCacheAtomic, key: str) -> Any:  # the read after the lock
        held.set()
        await asyncio.sleep(60)

    async def main() -> None:
        task = asyncio.ensure_future(backend.astart_computation("{g}k", 60, "g", "at_most_once"))
        await held.wait()
        assert raw.exists(lock) == 1, "the caller holds the lock"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    RedisCacheAtomic.alookup = stalled  # type: ignore[method-assign]
    try:
        asyncio.run(main())
    finally:
        RedisCacheAtomic.alookup = original  # type: ignore[method-assign]
    assert raw.exists(lock) == 0, "released on cancellation, not left for its 30 s TTL"


def test_a_cancelled_probe_hands_the_probe_back(make_redis_server: Any) -> None:
    server = make_redis_server()
    backend = RedisCacheNoExceptions(
        url=server.url, key_prefix=fresh_prefix(), read_timeout=2, retry_interval=0.05
    )
    assert run(lambda: backend.aset_tracked("k", 1, 60)) is True
    server.pause()  # SIGSTOP: a call waits for its read timeout
    try:

        async def main() -> None:
            call = asyncio.ensure_future(backend.alookup("k"))
            await asyncio.sleep(0.2)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

        run(main)
    finally:
        server.resume()
    assert not backend._prober, "no probe is left claimed by a cancelled call"
    assert run(lambda: backend.alookup("k")) == 1


def test_a_burst_on_a_sentinel_master_waits_for_connections(
    redis_sentinel: RedisSentinelSet,
) -> None:
    backend = RedisCacheNoExceptions(
        sentinels=redis_sentinel.sentinels,
        sentinel_master=redis_sentinel.master_name,
        key_prefix=fresh_prefix(),
        max_connections=4,
    )

    async def main() -> list[Any]:
        await asyncio.gather(*(backend.aset_tracked(f"b{i}", i, 60) for i in range(200)))
        return list(await asyncio.gather(*(backend.alookup(f"b{i}") for i in range(200))))

    assert asyncio.run(main()) == list(range(200))
    assert backend.stats.errors == 0


def test_sync_connection_options_do_not_reach_the_asyncio_client(redis_url: str) -> None:
    backend = RedisCacheNoExceptions(url=redis_url, connection_class=redis.Connection)
    assert run(lambda: backend.aset_tracked("k", 1, 60)) is True
    assert run(lambda: backend.alookup("k")) == 1
    assert backend.stats.errors == 0


def test_a_subclass_override_sees_async_calls_too(redis_url: str) -> None:
    seen: list[str] = []

    class Audited(RedisCache):
        def lookup_entry(self, key: str) -> tuple[Any, float | None]:
            seen.append(key)
            return super().lookup_entry(key)

    backend = Audited(url=redis_url, key_prefix=fresh_prefix())
    backend.set("k", 1, 60)
    assert run(lambda: backend.alookup_entry("k"))[0] == 1
    assert seen == ["k"]


@pytest.mark.parametrize("where", ["options", "url"])
def test_one_deadline_bounds_a_command_and_leaves_no_reply_behind(
    make_redis_server: Callable[[], RedisServer], where: str
) -> None:
    """A frozen server: each command fails at its deadline, then every reply is its own.

    The asyncio client's connections have no read timeout; the backend bounds each command
    as a whole. A command cut short must close its connection, or the next command on it
    would read the reply the frozen server sends late (the first key's value).
    """
    server = make_redis_server()
    url, options = server.url, {"read_timeout": 0.3, "connect_timeout": 0.3}
    if where == "url":  # redis-py lets the URL's timeout win, for the sync and asyncio client
        url, options = f"{server.url}?socket_timeout=0.3", {"read_timeout": 30.0}
    backend = RedisCache(url=url, key_prefix=fresh_prefix(), **options)  # type: ignore[arg-type]

    async def main() -> tuple[list[Any], list[float], Any]:
        await backend.aset_tracked("first", "first value", 60)
        await backend.aset_tracked("second", "second value", 60)
        server.pause()
        try:
            outcomes: list[Any] = []
            times: list[float] = []
            for _ in range(3):  # concurrent commands, each on its own connection
                start = time.perf_counter()
                outcomes += await asyncio.gather(
                    *(backend.alookup("first") for _ in range(4)), return_exceptions=True
                )
                times.append(time.perf_counter() - start)
        finally:
            server.resume()
        return outcomes, times, await backend.alookup("second")

    outcomes, times, second = asyncio.run(main())
    assert all("no reply within" in str(outcome) for outcome in outcomes), outcomes
    assert max(times) < 5.0, f"a frozen server held a command {max(times):.2f} s"
    assert second == "second value", "a late reply of the frozen server was read as this one"
