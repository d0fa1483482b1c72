"""Miss + write: a trivial function computed and written to both layers, with key tracking.

Every call takes a fresh argument (an incrementing counter), so each is a miss: the local
layer (SimpleCache) misses, the shared layer (RedisCache) misses (one ``GET``), the function
runs, the value is written to Redis with its key tracked (one ``MULTI``/``SET``/``EVAL``/
``EXEC`` round trip), then to the local layer.

The anchor is one raw redis-py ``SET ... EX`` round trip of the same value, under a key
formatted the way ``cached_for`` formats it (an f-string of the function's name and the
argument's ``repr``), and pickled the same way: the key and serialization costs are on both
sides, so the ratio shows what the layers, the miss and the tracking add. A second raw
contender, a ``GET`` that misses then the ``SET ... EX`` (two round trips), is the floor of
any read-through cache's miss, for reference.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable
from typing import Any

import redis
from harness import measure_with_cpu
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, cached_for
from stratacache.keys import function_name

CASES = ("miss_write",)

RAW = "raw redis-py SET EX (key formatting + pickle.dumps)"
RAW_READ_THROUGH = "raw redis-py GET (miss) + SET EX"
STRATACACHE = "stratacache cached_for miss + write (SimpleCache + RedisCache)"
NO_CHANNEL = "stratacache cached_for miss + write, CACHE_INVALIDATION=off"

computed = itertools.count()
"""How many times :func:`order` ran (to prove every measured call was a miss)."""


def order(number: int) -> dict[str, Any]:
    """The trivial function cached: a small dict built from its argument."""
    next(computed)
    return {"number": number, "status": "paid", "total": 12.5}


def raw_case(port: int, prefix: str, *, read_first: bool = False) -> Callable[[], Any]:
    """One ``SET ... EX`` of a fresh key per call, key and value built like cached_for's.

    With ``read_first``, a ``GET`` of the key (a miss) comes first, as in a read-through
    cache.
    """
    client = redis.Redis(host="127.0.0.1", port=port)
    numbers = itertools.count()
    name = "{" + function_name(order) + "}"

    def write() -> Any:
        number = next(numbers)
        key = f"{prefix}{name}({number!r},)"
        if read_first and client.get(key) is not None:
            raise AssertionError(f"{key} should be a miss")
        return client.set(key, pickle.dumps(order(number), pickle.HIGHEST_PROTOCOL), ex=300)

    return write


def stratacache_case(url: str, invalidation: str = "auto") -> Callable[[], Any]:
    """A ``cached_for`` call with a fresh argument each time: always a miss and a write.

    ``invalidation`` is ``CACHE_INVALIDATION``: ``"auto"`` (the default) announces each
    write on the invalidation channel, which this process's listener receives too; ``"off"``
    shows what the channel costs.
    """
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": f"write_{invalidation}_",
            "LOCALCACHE_TYPE": "SimpleCache",
            "CACHE_INVALIDATION": invalidation,
        }
    )
    func = cached_for(minutes=5, stack=stack)(order)
    numbers = itertools.count()
    return lambda: func(next(numbers))


def run(ctx: Context) -> list[CaseResult]:
    """Measure miss + write against one raw ``SET EX`` and the two-round-trip floor.

    The wall time and this process's CPU time come from the same batches: the CPU table
    leaves out the server's work and the machine's other load.
    """
    batches, calls = ctx.pick((100, 30), (3, 10))
    cases = {
        RAW: raw_case(ctx.server.port, "raw:"),
        RAW_READ_THROUGH: raw_case(ctx.server.port, "raw-read:", read_first=True),
        STRATACACHE: stratacache_case(ctx.server.url),
        NO_CHANNEL: stratacache_case(ctx.server.url, "off"),
    }
    before = next(computed)
    samples, cpu = measure_with_cpu(cases, batches, calls)
    runs = next(computed) - before - 1
    # Every case calls order() once per call: the raw ones to build their value, cached_for
    # on every miss. All calls computing means all of cached_for's calls were misses.
    assert runs == len(cases) * (batches + 1) * calls, runs
    table = make_table("miss + write", samples, RAW)
    cpu_table = make_table("miss + write, CPU time of this process", cpu, RAW)
    return [
        CaseResult(
            "miss_write",
            [table, cpu_table],
            [
                check(
                    "miss_write",
                    table,
                    STRATACACHE,
                    "<= 1.3x raw SET EX",
                    short="vs raw SET EX",
                    at_most=1.3,
                ),
                check(
                    "miss_write",
                    table,
                    STRATACACHE,
                    "<= 1.15x the two-round-trip floor",
                    short="vs GET + SET EX",
                    at_most=1.15,
                    anchor=RAW_READ_THROUGH,
                ),
            ],
            notes={"calls_computed": runs},
        )
    ]
