"""The async RedisCacheNoExceptions tier under real faults: refused, frozen, killed and back.

An ``async def`` service on a SimpleCache tier over RedisCacheNoExceptions (``redis.asyncio``)
keeps answering while its redis-server is killed (connections refused), frozen with SIGSTOP
(connections accepted, nothing answers) and restarted: no caller sees an exception, every
call ends within its configured timeouts (asserted with generous bounds), the local tier
keeps serving what it holds, and Redis is used again soon after it returns. Each phase runs
in an event loop of its own, as a service's requests might.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache
from tests.redis_server import RedisServer

TIMEOUT = 0.2  # connect and read timeouts of the tier
BOUND = 2 * TIMEOUT + 1.0  # what one call may take at most, generously: never unbounded
RETRY_INTERVAL = 0.3


class Service:
    """One instance: a local tier, the shared tier, a cached async function."""

    def __init__(self, url: str) -> None:
        self.shared = RedisCacheNoExceptions(
            url=url,
            key_prefix="faults:",
            connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT,
            retry_interval=RETRY_INTERVAL,
        )
        self.stack = CacheStack.from_tiers([SimpleCache(), self.shared])
        self.computed: list[int] = []

        @cached_for(minutes=5, stack=self.stack)
        async def price(n: int) -> int:
            self.computed.append(n)
            return 10 * n

        self.price = price

    async def burst(self, keys: range) -> tuple[list[Any], list[float]]:
        """Call every operation for ``keys`` at once; the results (or exceptions) and times."""

        async def timed(call: Callable[[], Any]) -> tuple[Any, float]:
            start = time.perf_counter()
            try:
                result = await call()
            except Exception as exc:
                result = exc
            return result, time.perf_counter() - start

        calls: list[Callable[[], Any]] = []
        for n in keys:
            calls += [
                lambda n=n: self.price(n),
                lambda n=n: self.stack.aget(f"k{n}"),
                lambda n=n: self.stack.aset(f"k{n}", n, 60),
                lambda n=n: self.stack.adelete(f"gone{n}"),
                lambda n=n: self.price.invalidate(n + 1000),
            ]
        done = await asyncio.gather(*(timed(call) for call in calls))
        return [r for r, _ in done], [t for _, t in done]


def exceptions(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


@pytest.mark.parametrize("fault", ["refused", "frozen"])
def test_no_exception_and_bounded_calls_while_redis_fails_then_recovery(
    make_redis_server: Callable[[], RedisServer], fault: str
) -> None:
    server = make_redis_server()
    service = Service(server.url)
    results, _ = asyncio.run(service.burst(range(5)))  # warm: local and shared tiers hold 0..4
    assert exceptions(results) == []
    assert sorted(service.computed) == [0, 1, 2, 3, 4]

    if fault == "refused":
        server.kill()
    else:
        server.pause()
    try:
        for phase in range(3):  # a loop each: the client of a dead loop is never reused
            start = time.perf_counter()
            results, times = asyncio.run(service.burst(range(10)))
            assert exceptions(results) == [], f"phase {phase}: {exceptions(results)[:3]}"
            assert max(times) < BOUND, f"phase {phase}: a call took {max(times):.2f}s"
            assert time.perf_counter() - start < 2 * BOUND, "the burst's calls ran concurrently"
            time.sleep(RETRY_INTERVAL)  # past the back-off: the next phase probes Redis again
        hits = asyncio.run(service.burst(range(5)))[0][::5]
        assert hits == [0, 10, 20, 30, 40], "the local tier served what it held"
        assert sorted(service.computed[:5]) == [0, 1, 2, 3, 4]
        assert service.shared.stats.errors > 0
    finally:
        if fault == "frozen":
            server.resume()
    if fault == "refused":
        server.restart()

    back = time.perf_counter()

    async def stored() -> bool:
        return bool(await service.stack.aset("probe", 1, 60))

    while not asyncio.run(stored()):
        assert time.perf_counter() - back < 3.0, "Redis is used again soon after it returns"
        time.sleep(0.02)
    assert asyncio.run(service.price(77)) == 770
    with server.client() as raw:
        assert raw.exists("faults:" + service.price.cache_key(77)) == 1


def test_killed_and_restarted_under_load_no_exception(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    service = Service(server.url)
    failures: list[BaseException] = []
    slowest = 0.0

    async def load(seconds: float) -> None:
        nonlocal slowest
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            results, times = await service.burst(range(n % 20, n % 20 + 4))
            failures.extend(exceptions(results))
            slowest = max(slowest, *times)
            n += 1
            await asyncio.sleep(0.005)

    async def main() -> None:
        task = asyncio.ensure_future(load(2.5))
        for _ in range(2):
            await asyncio.sleep(0.4)
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(0.4)
            await asyncio.to_thread(server.restart)
        await task

    asyncio.run(main())
    assert failures == []
    assert slowest < BOUND, f"a call took {slowest:.2f}s"
    assert asyncio.run(service.price(5000)) == 50000
    with server.client() as raw:
        assert raw.exists("faults:" + service.price.cache_key(5000)) == 1
