"""Local-hit benchmark: ``cached_for`` on SimpleCache against functools and cachetools.

Each case calls a cached function with a warm entry, in batches; the cases alternate batch by
batch so that drift of a shared, noisy machine hits all of them alike. Reported: the median
(and p99, min, max) time per call over all batches, and each case's ratio to cachetools.

    .venv/bin/python benchmarks/local_hit.py              # full run, about 20 s
    .venv/bin/python benchmarks/local_hit.py --smoke      # seconds; what CI runs
    .venv/bin/python benchmarks/local_hit.py --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import cachetools

import stratacache
from stratacache import CacheStack, cached_for

RATES = {"USD": 1.08, "GBP": 0.85, "JPY": 161.2}
ANCHOR = "cachetools.cached(TTLCache)"


def rates(currency: str) -> dict[str, float]:
    """The function every case caches: a small dict, like a typical cached lookup."""
    return dict(RATES)


def build_cases() -> dict[str, Callable[[str], Any]]:
    """Return each contender, already holding the entry for 'EUR'."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache"})
    cases: dict[str, Callable[[str], Any]] = {
        "functools.lru_cache": functools.lru_cache(maxsize=500)(rates),
        ANCHOR: cachetools.cached(cachetools.TTLCache(maxsize=500, ttl=300))(rates),
        "stratacache cached_for (SimpleCache)": cached_for(minutes=5, stack=stack)(rates),
        "stratacache cached_for (no serialization)": cached_for(
            minutes=5, local_ram_cache_only=True, no_serialization=True, stack=stack
        )(rates),
    }
    for func in cases.values():
        assert func("EUR") == RATES
    return cases


def measure(
    cases: dict[str, Callable[[str], Any]], batches: int, calls: int
) -> dict[str, list[float]]:
    """Return, per case, the time per call (ns) of each batch, cases alternating."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for func in cases.values():  # warm-up
        for _ in range(calls):
            func("EUR")
    for _ in range(batches):
        for name, func in cases.items():
            start = time.perf_counter_ns()
            for _ in range(calls):
                func("EUR")
            samples[name].append((time.perf_counter_ns() - start) / calls)
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median, p99, min and max per case, with the ratio of medians to the anchor."""
    out: dict[str, dict[str, float]] = {}
    for name, values in samples.items():
        ordered = sorted(values)
        out[name] = {
            "median_ns": statistics.median(ordered),
            "p99_ns": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "min_ns": ordered[0],
            "max_ns": ordered[-1],
            "runs": len(ordered),
        }
    anchor = out[ANCHOR]["median_ns"]
    for figures in out.values():
        figures["ratio_to_anchor"] = figures["median_ns"] / anchor
    return out


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "stratacache": stratacache.__version__,
        "cachetools": version("cachetools"),
        "machine": platform.machine(),
    }


def markdown(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| case | median (ns/call) | p99 | min | max | ratio to cachetools |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in results.items():
        lines.append(
            f"| {name} | {f['median_ns']:.0f} | {f['p99_ns']:.0f} | {f['min_ns']:.0f}"
            f" | {f['max_ns']:.0f} | {f['ratio_to_anchor']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    batches, calls = (5, 200) if args.smoke else (args.batches, args.calls)
    results = summarize(measure(build_cases(), batches, calls))
    print(markdown(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"environment": environment(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
