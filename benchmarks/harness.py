"""The timing harness shared by the benchmarks: alternating batches, medians, ratios.

Each case is a zero-argument callable doing one operation. The cases run batch by batch in
turn, so drift of a shared, noisy machine hits all of them alike; a batch's time divided by
its calls is one sample. Figures: median, p99, min and max of the samples, and the ratio of
each median to the anchor's.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

Case = Callable[[], Any]


def measure(cases: Mapping[str, Case], batches: int, calls: int) -> dict[str, list[float]]:
    """Return, per case, the nanoseconds per call of each batch (cases alternating)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for func in cases.values():  # warm-up
        for _ in range(calls):
            func()
    for _ in range(batches):
        for name, func in cases.items():
            start = time.perf_counter_ns()
            for _ in range(calls):
                func()
            samples[name].append((time.perf_counter_ns() - start) / calls)
    return samples


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


def save(path: str, environment_: Mapping[str, Any], results: Mapping[str, Any]) -> None:
    """Write every figure and the environment as JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"environment": environment_, "results": results}, fh, indent=2)
