"""Scenario 15: a 60 s soak of mixed two-layer traffic from 4 processes.

Run by ``make reliability`` (``STRATACACHE_SOAK=1``), not by CI. Each worker process runs
threads that mix local hits, shared hits, misses that compute and write, deletes and
at_most_once calls against one dedicated redis-server, with a small local layer so that it
evicts all the time. The first seconds warm every cache, pool and code path up; then the
workers count operations and latencies (in histograms allocated before the start, so the
measuring itself allocates nothing) and read their resident memory.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import stratacache
from stratacache import cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer

from .figures import record
from .test_atomic_writes import _Worker

pytestmark = [
    pytest.mark.soak,
    pytest.mark.subprocess,
    pytest.mark.skipif(
        os.environ.get("STRATACACHE_SOAK") != "1",
        reason="the 60 s soak is run by `make reliability` (STRATACACHE_SOAK=1), not by CI",
    ),
]

PROCESSES, THREADS = 4, 2
SOAK_SECONDS, WARM_UP_SECONDS = 60, 10
ENTRY_SECONDS = 5  # entries expire well within the warm-up: Redis's key count is steady after
LOCAL_THRESHOLD = 100
HOT_KEYS, WARM_KEYS, ATOMIC_KEYS = 50, 5000, 500
# After the warm-up, nothing in a worker should grow: the local layer is bounded by
# LOCAL_THRESHOLD entries of ~300 B, the pools by the thread count, the histograms are
# preallocated (runs measured ~0.1 MB of growth). 4 MB leaves room for a few allocator arenas
# and still catches a leak of a few tens of bytes per operation (a worker makes hundreds of
# thousands of operations after the warm-up; the record states this run's figure).
RSS_GROWTH_LIMIT_KB = 4 * 1024
BUCKET_NS = 10_000  # latency histogram buckets of 10 us, up to 1 s (the last one: slower)
BUCKETS = 100_001
PAYLOAD = "x" * 256
# What the threads draw; hot keys are mostly local hits, warm keys mostly shared hits.
OPERATIONS = ("hot key", "warm key", "new key (miss + write)", "delete", "at_most_once key")


@cached_for(seconds=ENTRY_SECONDS)
def soak_value(n: int) -> dict[str, Any]:
    """The plain cached function of the soak."""
    _computed[0] += 1
    return {"n": n, "payload": PAYLOAD}


@cached_for(seconds=ENTRY_SECONDS, atomic_writes="at_most_once")
def soak_once(n: int) -> dict[str, Any]:
    """The at_most_once function of the soak."""
    _computed[0] += 1
    return {"n": n, "payload": PAYLOAD}


_computed = [0]  # computations in this process (approximate under threads: a figure only)


def _rss_kb() -> int:
    """This process's resident set size, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class _Warnings(logging.Handler):
    """Keeps the WARNING records of the Redis backends (outages, unreadable entries)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def soak_main() -> None:
    """Worker: THREADS threads of mixed traffic for SOAK_SECONDS; prints what it measured."""
    warnings = _Warnings()
    logging.getLogger("stratacache_plugins").addHandler(warnings)
    backend = stratacache.cache.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    backend.client.ping()
    histograms = [array("q", bytes(8 * BUCKETS)) for _ in range(THREADS)]
    operations = [array("q", bytes(8 * len(OPERATIONS))) for _ in range(THREADS)]
    errors: list[str] = []
    measuring = threading.Event()
    stop = threading.Event()
    start = threading.Barrier(THREADS + 1)

    def traffic(i: int) -> None:
        rng = random.Random(f"{os.getpid()}-{i}")
        histogram, counts = histograms[i], operations[i]
        fresh = (os.getpid() * THREADS + i) * 10**9
        clock = time.perf_counter_ns
        start.wait()
        while not stop.is_set():
            draw = rng.random()
            began = clock()
            try:
                if draw < 0.5:
                    kind, n = 0, rng.randrange(HOT_KEYS)
                    ok = soak_value(n)["n"] == n
                elif draw < 0.75:
                    kind, n = 1, HOT_KEYS + rng.randrange(WARM_KEYS)
                    ok = soak_value(n)["n"] == n
                elif draw < 0.85:
                    fresh += 1
                    kind, n = 2, fresh
                    ok = soak_value(n)["n"] == n
                elif draw < 0.93:
                    kind = 3
                    soak_value.invalidate(HOT_KEYS + rng.randrange(WARM_KEYS))
                    ok = True
                else:
                    kind, n = 4, rng.randrange(ATOMIC_KEYS)
                    ok = soak_once(n)["n"] == n
                if not ok:
                    errors.append(f"{OPERATIONS[kind]}: a wrong value")
            except Exception as exc:  # counted: the soak requires none
                errors.append(repr(exc))
                continue
            if measuring.is_set():
                histogram[min((clock() - began) // BUCKET_NS, BUCKETS - 1)] += 1
                counts[kind] += 1

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    start.wait()
    began = time.monotonic()
    time.sleep(WARM_UP_SECONDS)
    measuring.set()
    rss = [_rss_kb()]
    computed_at_start = _computed[0]
    while (left := began + SOAK_SECONDS - time.monotonic()) > 0:
        time.sleep(min(5.0, left))
        rss.append(_rss_kb())
    stop.set()
    for thread in threads:
        thread.join()
    histogram = [sum(h[b] for h in histograms) for b in range(BUCKETS)]
    result = {
        "operations": {name: sum(c[k] for c in operations) for k, name in enumerate(OPERATIONS)},
        "computations": _computed[0] - computed_at_start,
        "histogram": {b: n for b, n in enumerate(histogram) if n},
        "rss_kb": rss,
        "errors": errors[:10],
        "error_count": len(errors),
        "warnings": warnings.messages[:10],
    }
    sys.stdout.write(json.dumps(result) + "\n")


def _histogram_percentile(histogram: Counter[int], fraction: float) -> float:
    """The ``fraction`` percentile of a latency histogram, in milliseconds (bucket top)."""
    total = sum(histogram.values())
    rank = max(1, round(fraction * total + 0.5))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_NS / 1e6
    return 0.0


def test_soak(make_redis_server: Callable[[], RedisServer], tmp_path: Path) -> None:
    """Scenario 15."""
    server = make_redis_server()
    env = clean_env(
        CACHE_TYPE="RedisCacheAtomic",
        CACHE_REDIS_URL=server.url,
        CACHE_KEY_PREFIX="soak_",
        # A loaded shared machine must not pass for an outage (which would be logged).
        CACHE_REDIS_READ_TIMEOUT="5",
        LOCALCACHE_THRESHOLD=str(LOCAL_THRESHOLD),
        PYTHONPATH=root_pythonpath(),
    )
    workers = [
        _Worker("soak_main", env, tmp_path / f"soak{i}.log", module=__name__)
        for i in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.expect(timeout=60) == "ready"
        for worker in workers:
            worker.send("go")
        with server.client() as raw:
            time.sleep(WARM_UP_SECONDS)
            info_start = raw.info()
            outputs = [worker.result(timeout=SOAK_SECONDS + 60) for worker in workers]
            info_end = raw.info()
    finally:
        for worker in workers:
            worker.close()
    measured = SOAK_SECONDS - WARM_UP_SECONDS
    histogram: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    for output in outputs:
        histogram.update({int(b): n for b, n in output["histogram"].items()})
        kinds.update(output["operations"])
    total = sum(kinds.values())
    rss = [output["rss_kb"] for output in outputs]
    growth = [samples[-1] - samples[0] for samples in rss]
    errors = sum(output["error_count"] for output in outputs)
    warnings = [message for output in outputs for message in output["warnings"]]
    shared_hits = info_end["keyspace_hits"] - info_start["keyspace_hits"]
    record(
        15,
        "60 s soak, mixed local/shared traffic",
        requirement=(
            f"{PROCESSES} processes x {THREADS} threads for {SOAK_SECONDS} s (the first"
            f" {WARM_UP_SECONDS} s a warm-up) on one redis-server: local hits, shared hits,"
            " misses that write, deletes and at_most_once calls, the local layer bounded to"
            f" {LOCAL_THRESHOLD} entries. Zero errors and zero Redis warnings; memory flat:"
            " each process's RSS at the end at most"
            f" {RSS_GROWTH_LIMIT_KB // 1024} MB above its RSS after the warm-up: its caches"
            " are bounded and its histograms preallocated, so more is a leak (in this run,"
            f" of over {RSS_GROWTH_LIMIT_KB * 1024 * PROCESSES / total:.0f} bytes per"
            " operation)"
        ),
        figures={
            "operations": total,
            "ops/s": round(total / measured),
            "p50 (ms)": _histogram_percentile(histogram, 0.5),
            "p99 (ms)": _histogram_percentile(histogram, 0.99),
            "RSS at start (MB)": " / ".join(f"{samples[0] / 1024:.1f}" for samples in rss),
            "RSS at end (MB)": " / ".join(f"{samples[-1] / 1024:.1f}" for samples in rss),
            "largest RSS growth (MB)": round(max(growth) / 1024, 2),
            "Redis used memory start / end (MB)": (
                f"{info_start['used_memory'] / 2**20:.1f} / {info_end['used_memory'] / 2**20:.1f}"
            ),
            "errors": errors,
        },
        table=[
            {
                "operation": kind,
                "count": kinds[kind],
                "share": f"{kinds[kind] / total:.0%}",
            }
            for kind in OPERATIONS
        ]
        + [
            {"operation": "shared GET hits (Redis INFO)", "count": shared_hits, "share": ""},
            {
                "operation": "computations (misses)",
                "count": sum(output["computations"] for output in outputs),
                "share": "",
            },
        ],
    )
    for output in outputs:
        assert output["errors"] == []
    assert errors == 0
    assert warnings == []
    assert all(g <= RSS_GROWTH_LIMIT_KB for g in growth), rss
