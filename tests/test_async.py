"""``cached_for`` on ``async def``: the sync semantics, awaited, and single flight that
survives cancellation.

Each test runs its own event loop (``asyncio.run``), as services and test runners do; the
Redis tests use a real redis-server (the shared tier runs in worker threads until the async
Redis twins land).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stratacache import NO_VALUE, AsyncOnlyBackend, CacheError, CacheStack, cached_for
from stratacache.testing.asyncsuite import AsyncBackendConformance
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache
from tests.conftest import clean_env
from tests.redis_server import RedisServer


def local_stack() -> CacheStack:
    return CacheStack.from_tiers([SimpleCache()])


def test_the_wrapper_is_a_coroutine_function_with_its_methods() -> None:
    @cached_for(minutes=5, stack=local_stack())
    async def price(item: int) -> dict[str, int]:
        return {"item": item}

    assert inspect.iscoroutinefunction(price)
    assert inspect.iscoroutinefunction(price.invalidate)
    assert inspect.iscoroutinefunction(price.clear_cache)
    assert price.cache_key(1).startswith("{tests.test_async.")
    assert price.__wrapped__.__name__ == "price"
    assert getattr(price, "__name__", None) == "price"  # functools.wraps


def test_values_are_cached_none_too_exceptions_never() -> None:
    calls: list[Any] = []

    @cached_for(minutes=5, stack=local_stack())
    async def lookup(item: int) -> int | None:
        calls.append(item)
        await asyncio.sleep(0)
        if item < 0:
            raise ValueError("negative")
        return None if item == 0 else item * 2

    async def main() -> None:
        assert await lookup(2) == await lookup(2) == 4
        assert await lookup(0) is None
        assert await lookup(0) is None
        for _ in range(2):
            with pytest.raises(ValueError, match="negative"):
                await lookup(-1)

    asyncio.run(main())
    assert calls == [2, 0, -1, -1]


def test_a_local_hit_never_suspends() -> None:
    @cached_for(minutes=5, stack=local_stack())
    async def square(n: int) -> int:
        return n * n

    asyncio.run(square(3))
    hit = square(3)
    with pytest.raises(StopIteration) as done:  # finished at the first step: no await
        hit.send(None)
    assert done.value.value == 9


def test_a_thousand_concurrent_tasks_on_one_cold_key_compute_once() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, stack=local_stack())
    async def slow(n: int) -> dict[str, int]:
        calls.append(n)
        await asyncio.sleep(0.05)
        return {"n": n}

    async def main() -> list[Any]:
        return await asyncio.gather(*(slow(7) for _ in range(1000)))

    results = asyncio.run(main())
    assert calls == [7]
    assert all(result == {"n": 7} for result in results)
    assert len({id(result) for result in results}) == 1000, "each caller gets its own copy"


def test_a_cancelled_waiter_or_starter_does_not_cancel_the_computation() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, stack=local_stack())
    async def slow(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0.1)
        return n + 1

    async def main() -> tuple[int, int]:
        starter = asyncio.create_task(slow(1))
        await asyncio.sleep(0.01)  # the starter's flight is under way
        waiter = asyncio.create_task(slow(1))
        other = asyncio.create_task(slow(1))
        await asyncio.sleep(0.01)
        starter.cancel()  # the caller that started the flight goes away
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starter
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await other, await slow(1)

    assert asyncio.run(main()) == (2, 2)
    assert calls == [1], "one computation, finished for the caller still waiting"


def test_a_failing_computation_fails_every_waiter_once() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, stack=local_stack())
    async def broken(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0.02)
        raise RuntimeError("down")

    async def main() -> list[Any]:
        return await asyncio.gather(*(broken(1) for _ in range(10)), return_exceptions=True)

    results = asyncio.run(main())
    assert calls == [1]
    assert all(isinstance(r, RuntimeError) for r in results)
    asyncio.run(main())
    assert calls == [1, 1], "the next wave runs it again: exceptions are never cached"


def test_invalidate_and_clear_cache_are_awaited() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, stack=local_stack())
    async def value(n: int) -> int:
        calls.append(n)
        return n

    async def main() -> None:
        await value(1)
        await value(2)
        assert await value.invalidate(1) is True
        await value(1)
        assert await value.clear_cache() == 2
        await value(2)

    asyncio.run(main())
    assert calls == [1, 2, 1, 2]


def test_methods_bind_and_their_invalidate_takes_the_instance() -> None:
    class Prices:
        def __init__(self, rate: int) -> None:
            self.rate = rate

        def __cache_key__(self) -> str:
            return f"rate={self.rate}"

        @cached_for(minutes=5, stack=local_stack())
        async def total(self, n: int) -> int:
            return n * self.rate

    async def main() -> None:
        low, high = Prices(2), Prices(3)
        assert await low.total(5) == 10
        assert await high.total(5) == 15
        assert inspect.iscoroutinefunction(low.total)
        assert await low.total.invalidate(5) is True

    asyncio.run(main())


def test_each_event_loop_has_its_own_flights() -> None:
    @cached_for(minutes=5, stack=local_stack())
    async def square(n: int) -> int:
        await asyncio.sleep(0)
        return n * n

    for n in range(3):  # asyncio.run makes a new loop each time
        assert asyncio.run(square(n)) == n * n


def test_a_redis_tier_is_awaited_and_shared(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    def stack() -> CacheStack:
        return CacheStack.from_tiers([SimpleCache(), RedisCache(url=redis_server.url)])

    calls: list[int] = []

    def define(on: CacheStack) -> Callable[[int], Any]:
        @cached_for(minutes=5, stack=on)
        async def shared(n: int) -> dict[str, int]:
            calls.append(n)
            return {"n": n}

        return shared

    with caplog.at_level(logging.WARNING, logger="stratacache.stack"):
        first, second = define(stack()), define(stack())  # two instances of a service
        assert asyncio.run(first(4)) == {"n": 4}
    assert asyncio.run(second(4)) == {"n": 4}, "the second instance hits the shared tier"
    assert calls == [4]
    assert "worker threads" not in caplog.text, "Redis serves async code natively"


def test_a_sync_only_tier_under_async_code_runs_in_threads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = CacheStack.from_tiers([SimpleCache(), FileSystemCache(str(tmp_path))])
    assert [t.native_async for t in stack.tiers] == [False, False]
    with caplog.at_level(logging.WARNING, logger="stratacache.stack"):

        @cached_for(minutes=5, stack=stack)
        def sync_only(n: int) -> int:
            return n

        assert "worker threads" not in caplog.text, "no async function: nothing to say"

        @cached_for(minutes=5, stack=stack)
        async def on_files(n: int) -> int:
            return n

    assert "'FileSystemCache' (FileSystemCache) have no async API" in caplog.text
    assert asyncio.run(on_files(2)) == 2
    assert caplog.text.count("worker threads") == 1, "once per configuration"


MIXED_WORKER = r"""
import asyncio, sys, threading, time
from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic

url, flavour, start, marks = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
stack = CacheStack.from_tiers([RedisCacheAtomic(url=url, key_prefix="mixed")])

def compute(n):
    with open(marks, "a") as out:  # one line per computation, whatever the process
        out.write(f"{flavour} {n}\n")
    time.sleep(0.3)
    return {"n": n}

if flavour == "async":
    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    async def report(n):
        return compute(n)
    async def main():
        return await asyncio.gather(*(report(n) for n in range(3) for _ in range(4)))
    time.sleep(max(0, start - time.time()))
    results = asyncio.run(main())
else:
    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    def report(n):
        return compute(n)
    results = []
    def call(n):
        results.append(report(n))
    threads = [threading.Thread(target=call, args=(n,)) for n in range(3) for _ in range(2)]
    time.sleep(max(0, start - time.time()))
    for t in threads: t.start()
    for t in threads: t.join()
assert all(r == {"n": r["n"]} for r in results), results
print(len(results))
"""


def test_sync_and_async_processes_coordinate_under_at_most_once(
    make_redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    script, marks = tmp_path / "worker.py", tmp_path / "computations.txt"
    script.write_text(MIXED_WORKER)
    start = time.time() + 1.5  # every process past its imports, then all at once
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), server.url, flavour, str(start), str(marks)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flavour in ("async", "sync", "async", "sync")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    computed = marks.read_text().split("\n")[:-1]
    # 4 processes (2 async: 12 tasks each; 2 sync: 6 threads each) on 3 keys: 3 computations.
    assert sorted(line.split()[1] for line in computed) == ["0", "1", "2"], computed


def test_the_stack_api_awaited(redis_server: RedisServer) -> None:
    def stack() -> CacheStack:
        return CacheStack.from_tiers(
            [SimpleCache(), RedisCache(url=redis_server.url, key_prefix="astack")]
        )

    one, two = stack(), stack()

    async def main() -> None:
        assert await one.aget("k", "absent") == "absent"
        assert await one.aset("k", {"v": 1}) is True
        # That write's invalidation reaches two first: a drop arriving during two's read
        # would, rightly, keep the value it read out of two's local tier.
        receiver = two._layers().coherence
        assert receiver is not None
        for _ in range(2000):
            if receiver.received >= 1:
                break
            await asyncio.sleep(0.001)
        assert await two.aget("k") == {"v": 1}  # from the shared tier, filling two's local
        assert two.local_cache.cache.get("k") == {"v": 1}
        assert await two.adelete("k") is True
        for _ in range(2000):  # coherent local tiers: two's delete reaches one's copy
            if await one.aget("k", "gone") == "gone":
                break
            await asyncio.sleep(0.001)
        assert await one.aget("k", "gone") == "gone", "one's local copy outlived two's delete"
        assert await one.aset("k", {"v": 2}) is True
        assert await one.aclear() is True
        assert await one.aget("k", "gone") == "gone"

    asyncio.run(main())


class AsyncOnlyDict(AsyncOnlyBackend):
    """A third-party backend that serves async code only (api = "async")."""

    def __init__(self) -> None:
        super().__init__(300)
        self.data: dict[str, Any] = {}
        self.groups: dict[str, set[str]] = {}

    async def alookup(self, key: str) -> Any:
        await asyncio.sleep(0)
        return self.data.get(key, NO_VALUE)

    async def aset_tracked(
        self, key: str, value: Any, timeout: Any = None, group: str | None = None
    ) -> bool:
        self.data[key] = value
        if group is not None:
            self.groups.setdefault(group, set()).add(key)
        return True

    async def adelete(self, key: str) -> bool:
        return self.data.pop(key, NO_VALUE) is not NO_VALUE

    async def aclear_tracked(self, group: str) -> int:
        return sum([await self.adelete(key) for key in self.groups.pop(group, set())])

    async def aclear(self) -> bool:
        self.data.clear()
        self.groups.clear()
        return True


def test_an_async_only_backend_serves_async_code_and_refuses_sync_calls() -> None:
    store = AsyncOnlyDict()
    stack = CacheStack.from_tiers([SimpleCache(), store])
    assert [t.native_async for t in stack.tiers] == [False, True]

    @cached_for(minutes=5, stack=stack)
    async def double(n: int) -> int:
        return 2 * n

    assert asyncio.run(double(21)) == 42
    assert store.data == {double.cache_key(21): 42}
    assert asyncio.run(stack.aget(double.cache_key(21))) == 42
    assert asyncio.run(double.invalidate(21)) is True
    assert store.data == {}
    asyncio.run(double(2))
    assert asyncio.run(double.clear_cache()) == 2, "the memory tier's copy, and the store's"

    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    async def coordinated(n: int) -> int:
        return n

    assert asyncio.run(coordinated(3)) == 3

    @cached_for(minutes=5, stack=stack)
    def sync_double(n: int) -> int:
        return 2 * n

    with pytest.raises(
        CacheError, match=r"AsyncOnlyDict.lookup_entry\(\) was called from synchronous"
    ):
        sync_double(1)


class TestAsyncOnlyConformance(AsyncBackendConformance):
    """The async conformance suite on the async-only backend above."""

    @pytest.fixture
    def make_backend(self) -> Callable[..., Any]:
        return lambda **options: AsyncOnlyDict()
