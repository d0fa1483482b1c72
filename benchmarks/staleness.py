"""The staleness window across 3 real processes, on Redis servers of its own::

    .venv/bin/python benchmarks/staleness.py               # 1,000 changes, about 10 s
    .venv/bin/python benchmarks/staleness.py --smoke       # 60 changes: seconds
    .venv/bin/python benchmarks/invalidation.py --staleness   # the same, from there
    .venv/bin/python benchmarks/staleness.py --topology sentinel   # or cluster
    .venv/bin/python benchmarks/staleness.py --async       # async readers and writer

``--topology`` starts one redis-server (``single``, the default), a Sentinel set (a master,
a replica, 3 sentinels) or a Cluster (3 masters, 3 replicas): ``benchmarks/topology.py``.
``--async`` makes the function an ``async def``: the readers await it in a tight loop,
the writer awaits ``f.set``, ``f.invalidate`` and ``f.clear_cache``.

Three processes share one decorated function, each with a local tier of one hour above
RedisCache (the invalidation channel on, as ``auto`` makes it). The writer changes entries
at a steady rate, in turn ``f.set(v, k)``, ``f.invalidate(k)`` and, every tenth change,
``f.clear_cache()``; the two readers call ``f(k)`` over 8 keys in tight loops. The function
returns the key's current version, which the writer bumps in Redis (a key of its own,
outside the cache) before each change, so versions only grow.

Each reader records, per key, the runs of equal values it read, with the times of a run's
first and last read (``time.monotonic``: one clock for every process of the host). For a
change that returned at ``t`` and made version ``v``, its window is the time from ``t`` to
the last read, by any reader, of a value older than ``v`` (0 if none came after ``t``).
Reported: p50, p99 and max of the windows, and the stale reads that came more than 50 ms
(the target) and more than 1 s after their change. Prints a table; ``--json PATH`` writes
the figures, with each change's time and window (``each``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "core"), str(ROOT / "plugins")]

from topology import NAMES, wait_subscribed  # noqa: E402

KEYS = 8
TARGET_MS = 50.0
LATE_MS = 1000.0


def _function(settings: dict[str, Any], truth_url: str, coroutine: bool) -> Any:
    """This process's stack and the shared function (the same group in every process).

    With ``coroutine``, the function is an ``async def`` reading the truth through
    ``redis.asyncio`` (a client made on first use, in the loop that awaits it).
    """
    import redis
    import redis.asyncio

    from stratacache import CacheStack, cached_for

    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            **settings,
            "CACHE_KEY_PREFIX": "stale",
            "LOCALCACHE_DEFAULT_TIMEOUT": 3600,
            "CACHE_REDIS_READ_TIMEOUT": 5,
            "CACHE_REDIS_CONNECT_TIMEOUT": 5,
            "CACHE_SECRET_KEY": "staleness-benchmark",
        }
    )
    truth = redis.Redis.from_url(truth_url)
    loop_truth: list[Any] = []

    def version(key: int) -> int:
        return int(truth.get(f"truth:{key}") or 0)

    async def aversion(key: int) -> int:
        if not loop_truth:
            loop_truth.append(redis.asyncio.Redis.from_url(truth_url))
        return int(await loop_truth[0].get(f"truth:{key}") or 0)

    chosen: Any = aversion if coroutine else version
    chosen.__qualname__ = "version"
    chosen.__module__ = "staleness"
    shared = cached_for(hours=1, stack=stack)(chosen)
    wait_subscribed(stack)
    return stack, shared, truth


def _ready() -> None:
    """Say so, and wait for the word to start (every process starts together)."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no word to start")


def reader(settings: dict[str, Any], truth_url: str, out: Path, coroutine: bool) -> None:
    """Read every key in a tight loop until SIGUSR1; write the runs of values read.

    With ``coroutine``, the loop is a coroutine awaiting the ``async def`` function.
    """
    stack, shared, _ = _function(settings, truth_url, coroutine)
    stopped = [False]
    signal.signal(signal.SIGUSR1, lambda *_: stopped.__setitem__(0, True))
    runs: list[list[list[float]]] = [[] for _ in range(KEYS)]  # [value, first, last]
    last: list[list[float] | None] = [None] * KEYS
    clock = time.monotonic

    def seen(key: int, value: float) -> None:
        now = clock()
        run = last[key]
        if run is not None and run[0] == value:
            run[2] = now
        else:
            run = last[key] = [value, now, now]
            runs[key].append(run)

    def read() -> int:
        reads = 0
        while not stopped[0]:
            for key in range(KEYS):
                seen(key, shared(key))
            reads += KEYS
        return reads

    async def aread() -> int:
        reads = 0
        while not stopped[0]:
            for key in range(KEYS):
                seen(key, await shared(key))
            reads += KEYS
        return reads

    _ready()
    reads = asyncio.run(aread()) if coroutine else read()
    out.write_text(json.dumps({"runs": runs, "reads": reads, "stats": stack.stats()}))
    stack.close()


def _change(n: int) -> tuple[int, int, str]:
    """Change ``n``'s version, key and kind: set, invalidate, and every tenth a clear."""
    kind = "clear_cache" if n % 10 == 9 else "invalidate" if n % 2 else "set"
    return n + 1, n % KEYS, kind


def writer(
    settings: dict[str, Any],
    truth_url: str,
    out: Path,
    changes: int,
    rate: float,
    *,
    coroutine: bool,
) -> None:
    """Make ``changes`` changes at ``rate`` a second; write what each changed and when."""
    stack, shared, truth = _function(settings, truth_url, coroutine)
    _ready()
    done = []
    period, start = 1.0 / rate, time.monotonic()

    def record(keys: list[int], version: int, kind: str) -> None:
        done.append({"keys": keys, "version": version, "kind": kind, "at": time.monotonic()})

    def write() -> None:
        for n in range(changes):
            time.sleep(max(0.0, start + n * period - time.monotonic()))
            version, key, kind = _change(n)
            keys = list(range(KEYS)) if kind == "clear_cache" else [key]
            truth.mset({f"truth:{k}": version for k in keys})
            if kind == "clear_cache":
                shared.clear_cache()
            elif kind == "invalidate":
                shared.invalidate(key)
            else:
                shared.set(version, key)
            record(keys, version, kind)

    async def awrite() -> None:  # the truth's writes are sync: a round trip on loopback
        for n in range(changes):
            await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))
            version, key, kind = _change(n)
            keys = list(range(KEYS)) if kind == "clear_cache" else [key]
            truth.mset({f"truth:{k}": version for k in keys})
            if kind == "clear_cache":
                await shared.clear_cache()
            elif kind == "invalidate":
                await shared.invalidate(key)
            else:
                await shared.set(version, key)
            record(keys, version, kind)

    if coroutine:
        asyncio.run(awrite())
    else:
        write()
    out.write_text(json.dumps({"changes": done}))
    stack.close()


def windows(changes: list[dict[str, Any]], readers: list[list[Any]]) -> dict[str, Any]:
    """Each change's window in ms, and the stale reads past the target and past 1 s."""
    found: list[float] = []
    kinds: dict[str, list[float]] = {}
    late_target = late_second = 0
    for change in changes:
        at, version, worst = change["at"], change["version"], 0.0
        for runs in readers:
            for key in change["keys"]:
                for value, _, last in runs[key]:
                    if value < version and last > at:
                        worst = max(worst, (last - at) * 1000)
        found.append(worst)
        kinds.setdefault(change["kind"], []).append(worst)
        late_target += worst > TARGET_MS
        late_second += worst > LATE_MS
    p99 = statistics.quantiles(found, n=100, method="inclusive")[98] if found[1:] else found[0]
    return {
        "changes": len(found),
        "window_ms_p50": statistics.median(found),
        "window_ms_p99": p99,
        "window_ms_max": max(found),
        "changes_past_target": late_target,
        "changes_past_1s": late_second,
        "by_kind_ms_max": {kind: max(values) for kind, values in kinds.items()},
        "each": [[change["at"], ms] for change, ms in zip(changes, found, strict=True)],
    }


def run(
    changes: int, rate: float, topology: str = "single", coroutine: bool = False
) -> dict[str, Any]:
    """Start the topology and the 3 processes; return the figures."""
    import topology as topologies

    servers = topologies.start(topology)
    work = Path(tempfile.mkdtemp(prefix="bench-stale-out-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--settings", json.dumps(servers.settings), "--truth", servers.truth_url]
    common += ["--async"] if coroutine else []
    try:
        role = ["--role", "writer", "--changes", str(changes), "--rate", str(rate)]
        roles = [["--role", "reader"], ["--role", "reader"], role]
        processes = [
            subprocess.Popen(
                [*me, *what, *common, "--out", str(work / f"p{i}")],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, what in enumerate(roles)
        ]
        for process in processes:  # each subscribed: then they start together
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise SystemExit(f"a process did not start ({process.wait()})")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        *readers, writing = processes
        if writing.wait(timeout=changes / rate + 120):
            raise SystemExit(f"the writer failed ({writing.returncode})")
        time.sleep(LATE_MS / 1000)  # reads go on past the last change's late bound
        for process in readers:
            process.send_signal(signal.SIGUSR1)
        for process in readers:
            if process.wait(timeout=60):
                raise SystemExit(f"a reader failed ({process.returncode})")
        results = [json.loads((work / f"p{i}").read_text()) for i in range(2)]
        made = json.loads((work / "p2").read_text())["changes"]
    finally:
        servers.stop()
    figures = windows(made, [r["runs"] for r in results])
    figures["reads"] = sum(r["reads"] for r in results)
    figures["rate_per_s"] = rate
    figures["topology"] = topology
    figures["async"] = coroutine
    figures["reader_flushes_after_loss"] = sum(
        r["stats"]["invalidation"]["flushes_after_loss"] for r in results
    )
    return figures


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    print(
        f"staleness, {figures['topology']}{', async' if figures['async'] else ''},"
        f" 3 processes, {figures['changes']} changes at {figures['rate_per_s']:g}/s,"
        f" {figures['reads']:,} reads: window p50 {figures['window_ms_p50']:.3f} ms,"
        f" p99 {figures['window_ms_p99']:.3f} ms, max {figures['window_ms_max']:.3f} ms"
    )
    print(
        f"  changes with a stale read > {TARGET_MS:g} ms after: {figures['changes_past_target']},"
        f" > 1 s after: {figures['changes_past_1s']}; worst by kind (ms):"
        f" {json.dumps({k: round(v, 3) for k, v in figures['by_kind_ms_max'].items()})}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the measurement (or one of its processes, with ``--role``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="60 changes: seconds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0, help="changes a second")
    parser.add_argument("--topology", choices=NAMES, default="single", help="where Redis runs")
    parser.add_argument("--async", dest="coroutine", action="store_true", help="async code")
    parser.add_argument("--role", choices=["reader", "writer"], help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "reader":
        reader(args.settings, args.truth, args.out, args.coroutine)
        return 0
    if args.role == "writer":
        writer(
            args.settings, args.truth, args.out, args.changes, args.rate, coroutine=args.coroutine
        )
        return 0
    figures = run(60 if args.smoke else args.changes, args.rate, args.topology, args.coroutine)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
