"""Async shared hits: ``cached_for`` on an ``async def`` served by Redis, on ``redis.asyncio``.

Every contender reads the same pickled small dict from the family's redis-server. A sample
is a batch of awaits run inside one coroutine on one running loop, so the loop's start-up
is paid once per batch and divided out. Contenders: raw ``redis.asyncio`` ``GET`` +
``pickle.loads`` (the floor), ``cached_for`` on a stack whose only tier is RedisCache (no
local tier: every call is a shared hit), cashews ``redis://`` (``@cache``) and aiocache's
``RedisCache`` (``@cached``). The throughput case runs 100 tasks at once, each doing shared
hits, against raw ``redis.asyncio`` with the same concurrency.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiocache import RedisCache as AioRedisCache
from aiocache import cached as aio_cached
from aiocache.serializers import PickleSerializer
from cashews import Cache as CashewsCache
from harness import measure, measure_rounds
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCache

CASES = ("async_shared_hit", "async_throughput")

RAW = "raw redis.asyncio GET + pickle.loads"
OURS = "stratacache cached_for, async def (RedisCache)"
CASHEWS = "cashews redis://"
AIOCACHE = "aiocache RedisCache (@cached)"
TASKS = 100
VALUE = {"a": 1}


def contenders(url: str, port: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each contender's shared hit; each entry is stored before the measurement."""
    raw_client = aioredis.Redis.from_url(url, max_connections=TASKS)

    async def raw() -> Any:
        data = await raw_client.get("bench_async_raw")
        return pickle.loads(data) if data is not None else None

    # The anchor's timeouts (redis-py's defaults, 5 s): 100 tasks opening their connections at
    # once on a loaded machine can take longer than our default connect timeout (0.5 s).
    ours_tier = RedisCache(
        url=url, key_prefix="bench_async_ours", connect_timeout=5.0, read_timeout=5.0
    )
    stack = CacheStack.from_tiers([ours_tier])

    @cached_for(minutes=30, stack=stack)
    async def ours(n: int) -> dict[str, int]:
        return VALUE

    cashews = CashewsCache()
    cashews.setup(f"redis://127.0.0.1:{port}/0", client_side=False)

    @cashews(ttl="30m", prefix="bench_async_cashews")
    async def by_cashews(n: int) -> dict[str, int]:
        return VALUE

    @aio_cached(
        ttl=1800,
        cache=AioRedisCache,
        serializer=PickleSerializer(),
        namespace="bench_async_aiocache",
        endpoint="127.0.0.1",
        port=port,
    )
    async def by_aiocache(n: int) -> dict[str, int]:
        return VALUE

    async def store_raw() -> None:
        await raw_client.set("bench_async_raw", pickle.dumps(VALUE))

    asyncio.run(store_raw())  # on a loop of its own: the client binds to the bench loop later
    raw_client = aioredis.Redis.from_url(url, max_connections=TASKS)
    return {
        RAW: raw,
        OURS: lambda: ours(1),
        CASHEWS: lambda: by_cashews(1),
        AIOCACHE: lambda: by_aiocache(1),
    }


def run(ctx: Context) -> list[CaseResult]:
    """Measure the async shared hit and the 100-task throughput, side by side."""
    batches, per_batch = ctx.pick((40, 200), (3, 20))
    rounds, per_task = ctx.pick((8, 40), (2, 4))
    loop = asyncio.new_event_loop()
    try:
        cases = contenders(ctx.server.url, ctx.server.port)
        for func in cases.values():  # each stores its entry: every later call is a hit
            assert loop.run_until_complete(func()) == VALUE

        def awaiting(func: Callable[[], Awaitable[Any]]) -> Callable[[], None]:
            async def batch() -> None:
                for _ in range(per_batch):
                    await func()

            return lambda: loop.run_until_complete(batch())

        raw = measure({name: awaiting(f) for name, f in cases.items()}, batches, 1)

        def concurrently(func: Callable[[], Awaitable[Any]]) -> Callable[[], float]:
            async def each() -> None:
                for _ in range(per_task):
                    await func()

            async def all_tasks() -> float:
                start = time.perf_counter()
                await asyncio.gather(*(each() for _ in range(TASKS)))
                return TASKS * per_task / (time.perf_counter() - start)

            return lambda: loop.run_until_complete(all_tasks())

        rates = measure_rounds({n: concurrently(cases[n]) for n in (RAW, OURS)}, rounds)
    finally:
        loop.close()
    samples = {name: [ns / per_batch for ns in values] for name, values in raw.items()}
    hit = make_table("async shared hit", samples, RAW, names=[RAW, OURS, CASHEWS, AIOCACHE])
    throughput = make_table(
        f"async shared-hit throughput, {TASKS} tasks",
        rates,
        RAW,
        unit="ops/s",
        higher_is_better=True,
        per="op",
    )
    return [
        CaseResult(
            "async_shared_hit",
            [hit],
            [
                check(
                    "async_shared_hit",
                    hit,
                    OURS,
                    "<= 1.15x raw redis.asyncio GET + pickle.loads",
                    short="vs raw redis.asyncio",
                    at_most=1.15,
                ),
            ],
            {
                "ratio to cashews redis:// (reported, no target)": round(
                    hit.ratio(OURS, CASHEWS), 3
                ),
                "ratio to aiocache RedisCache (reported, no target)": round(
                    hit.ratio(OURS, AIOCACHE), 3
                ),
            },
        ),
        CaseResult(
            "async_throughput",
            [throughput],
            [
                check(
                    "async_throughput",
                    throughput,
                    OURS,
                    f">= 0.85x raw redis.asyncio, {TASKS} tasks",
                    short=f"{TASKS} tasks, ops/s vs raw",
                    at_least=0.85,
                )
            ],
        ),
    ]
