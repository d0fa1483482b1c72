"""Memory: resident bytes per entry of 1e5 cached small dicts, SimpleCache against cachetools.

Each contender runs in a fresh interpreter (this file, run as a script): it builds its cached
function, reads its resident set size from ``/proc/self/statm``, calls the function with
1e5 different arguments (each call stores one entry: the small dict of ``local_hit.rates``
under its key), collects garbage and reads the resident set size again. The difference over
the entries is the figure. Contenders alternate interpreter by interpreter.

The contenders: ``cachetools.cached(TTLCache)`` (the anchor), ``cached_for`` on SimpleCache
(values pickled), ``cached_for`` by reference (``no_serialization=True``) and
``functools.lru_cache`` (the floor: no expiry, no copy).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import cachetools
from harness import measure_rounds
from local_hit import rates
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, cached_for

CASES = ("memory",)

ANCHOR = "cachetools.cached(TTLCache)"
SIMPLE = "stratacache cached_for (SimpleCache)"
BY_REFERENCE = "stratacache cached_for (no serialization)"
LRU = "functools.lru_cache"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * PAGE_SIZE


def build(contender: str, entries: int) -> tuple[Callable[[str], Any], Callable[[], int]]:
    """The cached function of ``contender``, able to hold ``entries``, and its entry count."""
    if contender == ANCHOR:
        cache: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=entries + 10, ttl=300)
        return cachetools.cached(cache)(rates), cache.__len__
    if contender == LRU:
        func = functools.lru_cache(maxsize=None)(rates)
        return func, lambda: func.cache_info().currsize
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "NullCache",
            "LOCALCACHE_TYPE": "SimpleCache",
            "LOCALCACHE_THRESHOLD": entries + 10,
        }
    )
    by_reference = contender == BY_REFERENCE
    cached = cached_for(
        minutes=5, local_ram_cache_only=by_reference, no_serialization=by_reference, stack=stack
    )(rates)
    layer = stack.local_cache_no_serializer if by_reference else stack.local_cache
    return cached, layer.cache.__len__  # type: ignore[attr-defined]


def bytes_per_entry(contender: str, entries: int) -> float:
    """In this (fresh) process: resident bytes added per entry by filling ``contender``."""
    func, count = build(contender, entries)
    func("warm-up")  # the first call allocates whatever a cache allocates once
    gc.collect()
    before = resident_bytes()
    for number in range(entries):
        func(f"C{number}")
    gc.collect()
    after = resident_bytes()
    assert count() == entries + 1, (count(), entries)
    return (after - before) / entries


def in_fresh_process(contender: str, entries: int) -> float:
    """Run :func:`bytes_per_entry` in a new interpreter and return its figure."""
    result = subprocess.run(
        [sys.executable, __file__, contender, str(entries)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(json.loads(result.stdout)["bytes_per_entry"])


def run(ctx: Context) -> list[CaseResult]:
    """Measure each contender in fresh processes; check SimpleCache against 1.5x cachetools."""
    entries, rounds = ctx.pick((100_000, 3), (10_000, 1))
    cases = {
        name: functools.partial(in_fresh_process, name, entries)
        for name in (LRU, ANCHOR, SIMPLE, BY_REFERENCE)
    }
    table = make_table(
        f"resident bytes per entry, {entries:,} small dicts",
        measure_rounds(cases, rounds),
        ANCHOR,
        unit="bytes",
        per="entry",
    )
    return [
        CaseResult(
            "memory",
            [table],
            [
                check(
                    "memory",
                    table,
                    SIMPLE,
                    "<= 1.5x cachetools TTLCache",
                    short="bytes/entry vs cachetools TTLCache",
                    at_most=1.5,
                )
            ],
            notes={"entries": entries},
        )
    ]


if __name__ == "__main__":
    print(json.dumps({"bytes_per_entry": bytes_per_entry(sys.argv[1], int(sys.argv[2]))}))
