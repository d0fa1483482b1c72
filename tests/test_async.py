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
from collections.abc import Callable
from typing import Any

import pytest

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache
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
    assert price.__name__ == "price"


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


def test_a_redis_tier_runs_in_threads_and_is_shared(
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

    first, second = define(stack()), define(stack())  # two instances of a service
    with caplog.at_level(logging.WARNING, logger="stratacache.decorator"):
        assert asyncio.run(first(4)) == {"n": 4}
    assert asyncio.run(second(4)) == {"n": 4}, "the second instance hits the shared tier"
    assert calls == [4]
    assert "run in worker threads" in caplog.text
