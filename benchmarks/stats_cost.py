"""What statistics cost: the local hit with ``CACHE_STATS`` on and off, side by side.

.venv/bin/python benchmarks/stats_cost.py              # full run, about 30 s
.venv/bin/python benchmarks/stats_cost.py --smoke      # seconds; what CI runs
.venv/bin/python benchmarks/stats_cost.py --json out.json

Four cases run in alternating batches in one process: ``cached_for`` on SimpleCache and with
``no_serialization=True``, each on a stack counting (the default) and on one configured with
``CACHE_STATS=false``. Each call is a local hit on the entry for ``'EUR'``. The ratio of each
"stats on" median to its "stats off" median is what counting costs; the target is <= 1.05x.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import environment, markdown, measure, parse_counts, save, summarize
from local_hit import RATES, rates

from stratacache import CacheStack, cached_for

TARGET = 1.05
SIMPLE = "cached_for (SimpleCache)"
BY_REFERENCE = "cached_for (no serialization)"
ON, OFF = "stats on", "CACHE_STATS off"


def case_name(kind: str, stats: str) -> str:
    """The name of a case: the kind of hit and whether the stack counts."""
    return f"{kind}, {stats}"


def build_cases() -> dict[str, Callable[[], Any]]:
    """Return the four contenders, each already holding its entry for 'EUR'."""
    cases: dict[str, Callable[[], Any]] = {}
    for stats, enabled in ((ON, True), (OFF, False)):
        stack = CacheStack()
        stack.configure(
            {"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache", "CACHE_STATS": enabled}
        )
        functions = {
            SIMPLE: cached_for(minutes=5, stack=stack)(rates),
            BY_REFERENCE: cached_for(
                minutes=5, local_ram_cache_only=True, no_serialization=True, stack=stack
            )(rates),
        }
        for kind, func in functions.items():
            assert func("EUR") == RATES
            assert func("EUR") == RATES  # a local hit, counted when the stack counts
            cases[case_name(kind, stats)] = functools.partial(func, "EUR")
        assert (stack.stats()["layers"]["local"]["hits"] == 1) is enabled
    return cases


def ratios(samples: dict[str, list[float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Summarize each kind of hit with its "stats off" case as the anchor."""
    out = {}
    for kind in (SIMPLE, BY_REFERENCE):
        names = [case_name(kind, ON), case_name(kind, OFF)]
        out[kind] = summarize({name: samples[name] for name in names}, case_name(kind, OFF))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print one table per kind of hit (and optionally save them)."""
    batches, calls, json_path = parse_counts(
        argv, __doc__.splitlines()[0], batches=200, calls=20_000, smoke=(5, 200)
    )
    tables = ratios(measure(build_cases(), batches, calls))
    for kind, results in tables.items():
        ratio = results[case_name(kind, ON)]["ratio_to_anchor"]
        verdict = "met" if ratio <= TARGET else "missed"
        print(f"\n{kind}: stats on / off = {ratio:.3f}x (target <= {TARGET}x: {verdict})\n")
        print(markdown(results, OFF))
    if json_path:
        flat = {name: figures for results in tables.values() for name, figures in results.items()}
        save(json_path, environment(), flat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
