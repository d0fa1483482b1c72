"""Local-hit benchmark: ``cached_for`` on SimpleCache against functools and cachetools.

.venv/bin/python benchmarks/local_hit.py              # full run, about 20 s
.venv/bin/python benchmarks/local_hit.py --smoke      # seconds; what CI runs
.venv/bin/python benchmarks/local_hit.py --json out.json
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import environment, markdown, measure, parse_counts, save, summarize

from stratacache import CacheStack, cached_for

RATES = {"USD": 1.08, "GBP": 0.85, "JPY": 161.2}
ANCHOR = "cachetools.cached(TTLCache)"


def rates(currency: str) -> dict[str, float]:
    """The function every case caches: a small dict, like a typical cached lookup."""
    return dict(RATES)


def build_cases() -> dict[str, Callable[[], Any]]:
    """Return each contender, already holding the entry for 'EUR'."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache"})
    functions: dict[str, Callable[[str], Any]] = {
        "functools.lru_cache": functools.lru_cache(maxsize=500)(rates),
        ANCHOR: cachetools.cached(cachetools.TTLCache(maxsize=500, ttl=300))(rates),
        "stratacache cached_for (SimpleCache)": cached_for(minutes=5, stack=stack)(rates),
        "stratacache cached_for (no serialization)": cached_for(
            minutes=5, local_ram_cache_only=True, no_serialization=True, stack=stack
        )(rates),
    }
    for func in functions.values():
        assert func("EUR") == RATES
    return {name: functools.partial(func, "EUR") for name, func in functions.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    batches, calls, json_path = parse_counts(
        argv, __doc__.splitlines()[0], batches=200, calls=20_000, smoke=(5, 200)
    )
    results = summarize(measure(build_cases(), batches, calls), ANCHOR)
    print(markdown(results, "cachetools"))
    if json_path:
        save(json_path, environment("cachetools"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
