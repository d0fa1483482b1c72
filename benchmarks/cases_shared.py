"""Shared hits: ``cached_for`` served by Redis (local layer NullCache), and at_most_once hits.

One group, the contenders of ``shared_hit.py``: raw redis-py ``GET`` + ``pickle.loads`` (the
floor), cachelib, dogpile.cache, Flask-Caching, and ``cached_for`` on each Redis backend,
including ``atomic_writes="at_most_once"`` on RedisCacheAtomic.
"""

from __future__ import annotations

from harness import measure
from model import CaseResult, Context, check, make_table
from shared_hit import ANCHOR, build_cases

CASES = ("shared_hit", "at_most_once")

REDIS = "stratacache cached_for (RedisCache)"
NO_EXCEPTIONS = "stratacache cached_for (RedisCacheNoExceptions)"
ATOMIC = "stratacache cached_for (RedisCacheAtomic)"
AT_MOST_ONCE = "stratacache cached_for (RedisCacheAtomic, at_most_once)"


def run(ctx: Context) -> list[CaseResult]:
    """Measure the shared-hit group and return its two cases."""
    batches, calls = ctx.pick((120, 25), (3, 10))
    samples = measure(build_cases(ctx.server.url, ctx.server.port), batches, calls)
    shared = make_table(
        "shared hit (local layer NullCache)",
        samples,
        ANCHOR,
        names=[n for n in samples if n != AT_MOST_ONCE],
    )
    atomic = make_table(
        "at_most_once hit", samples, REDIS, names=[REDIS, NO_EXCEPTIONS, ATOMIC, AT_MOST_ONCE]
    )
    return [
        CaseResult(
            "shared_hit",
            [shared],
            [
                check(
                    "shared_hit",
                    shared,
                    REDIS,
                    "<= 1.15x the raw floor",
                    short="vs raw GET + pickle.loads",
                    at_most=1.15,
                )
            ],
        ),
        CaseResult(
            "at_most_once",
            [atomic],
            [
                check(
                    "at_most_once",
                    atomic,
                    AT_MOST_ONCE,
                    "<= 1.1x a RedisCache hit",
                    short="vs a RedisCache hit",
                    at_most=1.1,
                )
            ],
        ),
    ]
