"""Async local hits: ``cached_for`` on an ``async def`` against the sync hit and the peers.

Every contender answers a hit for the same argument with a small dict. A sample is a batch
of awaits run inside one coroutine on a running loop (the sync contender: the same number
of plain calls), so the loop's own start-up is paid once per batch, not per call, and
divided out. Contenders: stratacache's sync hit (the anchor of the first target),
stratacache's async hit (``SimpleCache`` tier: no ``await`` or thread inside a hit),
cashews' ``mem://`` cache and aiocache's ``SimpleMemoryCache`` (``@cached``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiocache import Cache as AioCache
from aiocache import cached as aio_cached
from cashews import Cache as CashewsCache
from harness import measure
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, cached_for
from stratacache_plugins.simple import SimpleCache

CASES = ("async_local_hit",)

SYNC = "stratacache cached_for, sync (SimpleCache)"
ASYNC = "stratacache cached_for, async def (SimpleCache)"
CASHEWS = "cashews mem://"
AIOCACHE = "aiocache SimpleMemoryCache (@cached)"


def contenders() -> tuple[Callable[[int], Any], dict[str, Callable[[int], Awaitable[Any]]]]:
    """The sync function and the async ones, each holding its entry for 1."""
    stack = CacheStack.from_tiers([SimpleCache()])

    @cached_for(minutes=5, stack=stack)
    def sync_hit(n: int) -> dict[str, int]:
        return {"n": n}

    @cached_for(minutes=5, stack=stack)
    async def async_hit(n: int) -> dict[str, int]:
        return {"n": n}

    cashews = CashewsCache()
    cashews.setup("mem://")

    @cashews(ttl="5m")
    async def cashews_hit(n: int) -> dict[str, int]:
        return {"n": n}

    @aio_cached(ttl=300, cache=AioCache.MEMORY)
    async def aiocache_hit(n: int) -> dict[str, int]:
        return {"n": n}

    return sync_hit, {ASYNC: async_hit, CASHEWS: cashews_hit, AIOCACHE: aiocache_hit}


def run(ctx: Context) -> list[CaseResult]:
    """Measure the async local hit side by side with the sync one and the peers."""
    batches, per_batch = ctx.pick((60, 2000), (3, 50))
    sync_hit, asynchronous = contenders()
    loop = asyncio.new_event_loop()
    try:

        def awaiting(func: Callable[[int], Awaitable[Any]]) -> Callable[[], None]:
            async def batch() -> None:
                for _ in range(per_batch):
                    await func(1)

            return lambda: loop.run_until_complete(batch())

        def calling() -> None:
            for _ in range(per_batch):
                sync_hit(1)

        cases = {SYNC: calling, **{name: awaiting(f) for name, f in asynchronous.items()}}
        for func in cases.values():
            func()  # each computes its entry once: every later call is a hit
        raw = measure(cases, batches, 1)
    finally:
        loop.close()
    samples = {name: [ns / per_batch for ns in values] for name, values in raw.items()}
    table = make_table("async local hit", samples, SYNC, names=[SYNC, ASYNC, CASHEWS, AIOCACHE])
    return [
        CaseResult(
            "async_local_hit",
            [table],
            [
                check(
                    "async_local_hit",
                    table,
                    ASYNC,
                    "<= 1.3x the sync local hit",
                    short="vs the sync hit",
                    at_most=1.3,
                ),
                check(
                    "async_local_hit",
                    table,
                    ASYNC,
                    ">= 10x faster than cashews mem://",
                    short="vs cashews",
                    at_most=0.1,
                    anchor=CASHEWS,
                ),
                check(
                    "async_local_hit",
                    table,
                    ASYNC,
                    ">= 10x faster than aiocache",
                    short="vs aiocache",
                    at_most=0.1,
                    anchor=AIOCACHE,
                ),
            ],
        )
    ]
