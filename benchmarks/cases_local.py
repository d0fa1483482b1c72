"""Local hits: ``cached_for`` on SimpleCache, by reference, in two- and three-tier stacks.

All contenders run side by side in one group: the local-hit contenders of ``local_hit.py``
(functools, cachetools, stratacache), a dogpile.cache memory region and Flask-Caching's
``memoize`` on SimpleCache, plus a two-layer stack (RedisCache behind SimpleCache) after its
first, shared hit, and a three-tier stack (SimpleCache, FileSystemCache, RedisCache, from
``CACHE_LAYERS``; see ``three_tier.py``) after its first call. Each call is a hit on the
entry for ``'EUR'``. A second group times the three-tier fill from Redis, for information.

On a core without ``CACHE_LAYERS`` the three-tier case is skipped (a printed message, and
``ctx.skipped``); the other cases are measured as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dogpile.cache import make_region
from flask import Flask
from flask_caching import Cache as FlaskCache
from harness import measure
from local_hit import ANCHOR, RATES, build_cases, rates
from model import CaseResult, Context, check, make_table
from three_tier import FILL, SHARED_HIT, THREE_TIER, TWO_LAYER_FILL, computed, fill_cases, skip
from three_tier import steady_state as three_tier_steady_state
from topology import wait_subscribed

from stratacache import NO_VALUE, CacheStack, cached_for

CASES = ("local_hit", "no_serializer_local_hit", "two_layer", "three_tier")

LRU = "functools.lru_cache"
DOGPILE = "dogpile.cache memory region"
FLASK = "Flask-Caching memoize (SimpleCache)"
SIMPLE = "stratacache cached_for (SimpleCache)"
BY_REFERENCE = "stratacache cached_for (no serialization)"
TWO_LAYER = "stratacache two-layer steady state (SimpleCache over RedisCache)"


def two_layer_case(url: str) -> Callable[[], Any]:
    """A local hit of a stack whose shared layer is Redis, after its first (shared) hit.

    Another stack computes the entry into Redis; this one's first call finds it there and
    copies it into its local layer; every later call is the steady state measured.
    """
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": "two_"}
    writer = CacheStack()
    writer.configure({**config, "LOCALCACHE_TYPE": "NullCache"})
    cached_for(minutes=5, stack=writer)(rates)("EUR")
    reader = CacheStack()
    reader.configure({**config, "LOCALCACHE_TYPE": "SimpleCache"})
    func = cached_for(minutes=5, stack=reader)(rates)
    wait_subscribed(reader)  # confirmed later, the channel would flush the fill below
    key = func.cache_key("EUR")
    assert reader.local_cache.lookup(key) is NO_VALUE
    assert reader.shared_cache.lookup(key) == RATES
    assert func("EUR") == RATES  # the first, shared hit fills the local layer
    assert reader.local_cache.lookup(key) == RATES
    return functools.partial(func, "EUR")


def build(flask_cache: FlaskCache, ctx: Context) -> dict[str, Callable[[], Any]]:
    """Every contender, holding its entry for 'EUR' (call inside the Flask app's context).

    The three-tier contender is left out, and ``three_tier`` put in ``ctx.skipped``, when
    this core has no ``CACHE_LAYERS``.
    """
    cases = build_cases()
    region = make_region().configure("dogpile.cache.memory", expiration_time=300)
    functions = {
        DOGPILE: region.cache_on_arguments()(rates),
        FLASK: flask_cache.memoize(timeout=300)(rates),
    }
    for name, func in functions.items():
        assert func("EUR") == RATES
        cases[name] = functools.partial(func, "EUR")
    cases[TWO_LAYER] = two_layer_case(ctx.server.url)
    three_tier = three_tier_steady_state(ctx.server, ctx.workdir / "three-tier")
    if isinstance(three_tier, str):
        ctx.skipped["three_tier"] = three_tier
        skip(three_tier)
    else:
        cases[THREE_TIER] = three_tier
    return cases


def three_tier_result(ctx: Context, samples: dict[str, list[float]]) -> CaseResult:
    """The three-tier case: its steady state against the SimpleCache hit, then its fill."""
    steady = make_table("three-tier steady state", samples, SIMPLE, names=[SIMPLE, THREE_TIER])
    batches, calls = ctx.pick((40, 10), (3, 5))
    fill = fill_cases(ctx.server, ctx.workdir / "three-tier", calls * (batches + 1))
    before = computed()
    fill_samples = measure(fill, batches, calls)
    assert computed() == before, "a fill call computed the value instead of reading Redis"
    fills = make_table(
        "three-tier fill from tier 2 (upper tiers empty, the value in Redis; for information)",
        fill_samples,
        SHARED_HIT,
        names=[SHARED_HIT, TWO_LAYER_FILL, FILL],
    )
    target = check(
        "three_tier",
        steady,
        THREE_TIER,
        "equal to the local hit (<= 1.1x)",
        short="vs a local hit",
        at_most=1.1,
    )
    return CaseResult("three_tier", [steady, fills], [target])


def run(ctx: Context) -> list[CaseResult]:
    """Measure the local-hit group and return its three cases."""
    batches, calls = ctx.pick((150, 800), (5, 100))
    app = Flask(__name__)
    flask_cache = FlaskCache(app, config={"CACHE_TYPE": "SimpleCache"})
    with app.app_context():
        samples = measure(build(flask_cache, ctx), batches, calls)
    anchors = [LRU, ANCHOR, DOGPILE, FLASK]
    local = make_table("local hit", samples, ANCHOR, names=[*anchors, SIMPLE])
    by_reference = make_table(
        "no-serializer local hit", samples, ANCHOR, names=[*anchors, BY_REFERENCE]
    )
    steady = make_table("two-layer steady state", samples, SIMPLE, names=[SIMPLE, TWO_LAYER])
    three_tier = [] if THREE_TIER not in samples else [three_tier_result(ctx, samples)]
    return [
        CaseResult(
            "local_hit",
            [local],
            [
                check(
                    "local_hit",
                    local,
                    SIMPLE,
                    "<= 2x cachetools",
                    short="vs cachetools",
                    at_most=2.0,
                ),
                check(
                    "local_hit",
                    local,
                    SIMPLE,
                    ">= 10x faster than Flask-Caching memoize (ratio <= 0.10x)",
                    short="vs Flask-Caching memoize",
                    at_most=0.1,
                    anchor=FLASK,
                ),
            ],
        ),
        CaseResult(
            "no_serializer_local_hit",
            [by_reference],
            [
                check(
                    "no_serializer_local_hit",
                    by_reference,
                    BY_REFERENCE,
                    "<= 1.5x cachetools",
                    short="vs cachetools",
                    at_most=1.5,
                )
            ],
        ),
        CaseResult(
            "two_layer",
            [steady],
            [
                check(
                    "two_layer",
                    steady,
                    TWO_LAYER,
                    "equal to the local hit (<= 1.1x)",
                    short="vs a local hit",
                    at_most=1.1,
                )
            ],
        ),
        *three_tier,
    ]
