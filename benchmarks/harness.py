"""The timing harness shared by the benchmarks: alternating batches, medians, ratios.

Each case is a zero-argument callable doing one operation. The cases run batch by batch in
turn (one batch of each per round, in a shuffled order), so drift of a shared, noisy machine
hits all of them alike; a batch's time divided by its calls is one sample. Figures: median,
p99, min and max of the samples, and the ratio of each median to the anchor's.

Operations that need a fresh setup each time (clearing a filled cache, a throughput round of
several processes, a memory reading in a new interpreter) use :func:`measure_rounds`: each
case returns one sample per call, and the cases alternate round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

Case = Callable[[], Any]


def measure(cases: Mapping[str, Case], batches: int, calls: int) -> dict[str, list[float]]:
    """Return, per case, the nanoseconds per call of each batch (cases alternating).

    Each round runs one batch of every case, in an order shuffled anew each round (seeded,
    so runs repeat), so no case always follows the same one: a heavy case can leave work
    (a collection, cold caches) to whichever runs next.
    """
    return measure_with_cpu(cases, batches, calls)[0]


def measure_with_cpu(
    cases: Mapping[str, Case], batches: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """:func:`measure`, also returning the CPU time of this process per call, batch by batch.

    The CPU time (``time.process_time_ns``: every thread of the process, user and system)
    is read around the same batches as the wall time: it leaves out what other processes
    do meanwhile (a server's work, the machine's other load), which the wall time includes.

    Returns:
        The wall-clock and the CPU samples, each in nanoseconds per call, per case.
    """
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for func in cases.values():  # warm-up
        for _ in range(calls):
            func()
    items = list(cases.items())
    shuffler = random.Random(len(items))
    for _ in range(batches):
        shuffler.shuffle(items)
        for name, func in items:
            start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
            for _ in range(calls):
                func()
            cpu[name].append((time.process_time_ns() - start_cpu) / calls)
            wall[name].append((time.perf_counter_ns() - start) / calls)
    return wall, cpu


def measure_rounds(cases: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Return, per case, the sample each of ``rounds`` calls returned (cases alternating).

    The order of the cases is reversed every other round, so a drift in time hits each case
    before and after the others alike.

    Args:
        cases: Callables that do their own setup and timing and return one sample.
        rounds: How many samples to take of each case.

    Returns:
        The samples of each case, in the order they were taken.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for round_ in range(rounds):
        for name, func in order if round_ % 2 == 0 else reversed(order):
            samples[name].append(func())
    return samples


def describe(values: Sequence[float], *, higher_is_better: bool = False) -> dict[str, float]:
    """Median, p99, min, max and count of ``values``, in their own unit.

    Args:
        values: The samples (at least one).
        higher_is_better: For throughputs: the p99 is then taken from the low end (the 1st
            percentile), so it is the slow tail, as it is for times.

    Returns:
        ``median``, ``p99``, ``min``, ``max`` and ``runs``.
    """
    ordered = sorted(values)
    tail = min(len(ordered) - 1, int(len(ordered) * 0.99))
    return {
        "median": statistics.median(ordered),
        "p99": ordered[len(ordered) - 1 - tail] if higher_is_better else ordered[tail],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": len(ordered),
    }


def summarize(samples: Mapping[str, list[float]], anchor: str) -> dict[str, dict[str, float]]:
    """Median, p99, min and max per case, with the ratio of medians to ``anchor``."""
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
    base = out[anchor]["median_ns"]
    for figures in out.values():
        figures["ratio_to_anchor"] = figures["median_ns"] / base
    return out


def environment(*packages: str) -> dict[str, Any]:
    """What the figures were measured on: Python, CPU count, package versions."""
    versions = {}
    for package in ("stratacache", *packages):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }


def markdown(results: Mapping[str, Mapping[str, float]], anchor: str, unit: str = "ns") -> str:
    """A Markdown table of the results (``unit``: ``ns`` or ``us``)."""
    scale = 1000.0 if unit == "us" else 1.0
    lines = [
        f"| case | median ({unit}/call) | p99 | min | max | ratio to {anchor} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in results.items():
        cells = [f"{f[k] / scale:.1f}" for k in ("median_ns", "p99_ns", "min_ns", "max_ns")]
        lines.append(f"| {name} | {' | '.join(cells)} | {f['ratio_to_anchor']:.2f}x |")
    return "\n".join(lines)


def parse_counts(
    argv: list[str] | None, description: str, batches: int, calls: int, smoke: tuple[int, int]
) -> tuple[int, int, str | None]:
    """Parse a single benchmark's command line: ``--smoke``, ``--batches``, ``--calls``,
    ``--json``. Return the batch and call counts to use and the JSON path (or None)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--batches", type=int, default=batches)
    parser.add_argument("--calls", type=int, default=calls)
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    counts = smoke if args.smoke else (args.batches, args.calls)
    return counts[0], counts[1], args.json


def save(path: str, environment_: Mapping[str, Any], results: Mapping[str, Any]) -> None:
    """Write every figure and the environment as JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"environment": environment_, "results": results}, fh, indent=2)
