"""What freshness costs a hit: the local hit with freshness options, and a hit during a refresh.

Four contenders run side by side in one group, each a local hit on the entry for ``'EUR'``
(a SimpleCache local tier, NullCache shared):

* ``cached_for`` without freshness options (the anchor);
* the same with ``refresh_after=0.8`` and ``fail_safe`` (the entry envelope written);
* a hit **during a refresh**: the entry went stale, its refresh is blocked on an event for
  the whole run, and callers keep getting the stale value;
* the same function before it went stale is the anchor's twin, so the ratio is what a
  refresh in progress costs a hit.

Targets: the envelope's hit within 1.05x of the plain one (``callgrind.py`` counts its
instructions too: ``--only stratacache,stratacache_fresh``), and a hit during a refresh
within 1.1x of a plain hit.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from harness import measure
from local_hit import RATES, rates
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, cached_for

CASES = ("freshness_hit", "refresh_hit")
PLAIN = "cached_for (SimpleCache)"
ENVELOPE = "cached_for, refresh_after=0.8 + fail_safe"
REFRESHING = "cached_for, stale, a refresh running"


def build_cases() -> tuple[dict[str, Callable[[], Any]], threading.Event]:
    """Return the contenders, each holding its entry, and the event that ends the refresh."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache"})
    release, refreshing = threading.Event(), threading.Event()
    plain = cached_for(minutes=5, stack=stack)(rates)

    def fresh_rates(currency: str) -> dict[str, float]:  # a key of its own
        return dict(RATES)

    envelope = cached_for(minutes=5, refresh_after=0.8, fail_safe=timedelta(hours=1), stack=stack)(
        fresh_rates
    )

    def stalling(currency: str) -> dict[str, float]:
        if stalling.filled:  # type: ignore[attr-defined]
            refreshing.set()
            release.wait()
        stalling.filled = True  # type: ignore[attr-defined]
        return dict(RATES)

    stalling.filled = False  # type: ignore[attr-defined]
    stale = cached_for(minutes=60, stale_after=0.05, stack=stack)(stalling)
    for func in (plain, envelope, stale):
        assert func("EUR") == RATES
    time.sleep(0.1)
    assert stale("EUR") == RATES  # stale: its refresh starts, and blocks
    assert refreshing.wait(10), "the refresh did not start"
    names = {f"{f.__module__}.{f.__qualname__}" for f in (plain, envelope, stale)}
    assert len(names) == 3, "each contender has entries of its own"
    functions = stack.stats()["functions"]
    assert functions[f"{envelope.__module__}.{envelope.__qualname__}"]["computations"] == 1
    cases = {
        PLAIN: functools.partial(plain, "EUR"),
        ENVELOPE: functools.partial(envelope, "EUR"),
        REFRESHING: functools.partial(stale, "EUR"),
    }
    return cases, release


def run(ctx: Context) -> list[CaseResult]:
    """Measure the contenders and return both cases."""
    batches, calls = ctx.pick((150, 800), (5, 100))
    cases, release = build_cases()
    try:
        samples = measure(cases, batches, calls)
    finally:
        release.set()
    envelope = make_table(
        "local hit with the entry envelope", samples, PLAIN, names=[PLAIN, ENVELOPE]
    )
    refreshing = make_table("hit during a refresh", samples, PLAIN, names=[PLAIN, REFRESHING])
    return [
        CaseResult(
            "freshness_hit",
            [envelope],
            [
                check(
                    "freshness_hit",
                    envelope,
                    ENVELOPE,
                    "<= 1.05x the local hit without freshness options",
                    short="envelope vs plain local hit",
                    at_most=1.05,
                )
            ],
        ),
        CaseResult(
            "refresh_hit",
            [refreshing],
            [
                check(
                    "refresh_hit",
                    refreshing,
                    REFRESHING,
                    "<= 1.1x a plain local hit",
                    short="hit during a refresh vs plain hit",
                    at_most=1.1,
                )
            ],
        ),
    ]
