"""The invalidation channel's cost to Redis and to the writer, side by side in one run::

    .venv/bin/python benchmarks/invalidation_cost.py           # one server, then a Cluster
    .venv/bin/python benchmarks/invalidation_cost.py --smoke   # a few hundred writes
    .venv/bin/python benchmarks/invalidation.py --cost         # the same, from there

On each topology (one redis-server; a Cluster of 3 masters and 3 replicas, where the
channel is sharded: ``SPUBLISH``), one writer in this process makes writes through a local
tier over RedisCache, one thread, a 100-byte value, of two kinds: a decorated function's
``f.set(v, k)`` (its tracked write) and a plain ``cache.set(k, v)``, over 100 keys. Three
contenders, interleaved round by round (the median of the rounds is reported):

* ``off``: ``CACHE_INVALIDATION=off``;
* ``on, 0 others``: the channel on, and no other instance listening on it (the writer's
  own listener only);
* ``on, 3 others``: the channel on, and 3 other real processes subscribed to it (the same
  prefix and function), each with its local tier and listener thread.

For each: writes a second (wall time: on a shared 2-core machine it mostly measures CPU
contention, the subscribers' included), the writer's CPU per write (its listener thread
included), Redis's CPU per write (``INFO cpu`` ``used_cpu_user + used_cpu_sys``, summed
over every data server, a Cluster's replicas included) and commands per write (``INFO
commandstats`` calls, summed over the masters, ``INFO`` itself left out). Redis's CPU
while idle, the subscribers connected, is measured first over 2 s and reported apart (a
Cluster's bus and replication links cost some). ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "core"), str(ROOT / "plugins")]

import topology as topologies  # noqa: E402

VALUE = "x" * 100
KEYS = 100
SUBSCRIBERS = 3
CONTENDERS = (  # name, prefix, CACHE_INVALIDATION
    ("off", "alone", "off"),
    ("on, 0 others", "alone", "on"),
    (f"on, {SUBSCRIBERS} others", "shared", "on"),
)
KINDS = ("f.set", "cache.set")
IDLE_S = 2.0


def instance(settings: dict[str, Any], prefix: str, mode: str) -> tuple[Any, Any]:
    """One instance: a stack (a local tier of an hour over RedisCache) and the function."""
    from stratacache import CacheStack, cached_for

    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            **settings,
            "CACHE_KEY_PREFIX": prefix,
            "CACHE_INVALIDATION": mode,
            "LOCALCACHE_DEFAULT_TIMEOUT": 3600,
            "CACHE_REDIS_CONNECT_TIMEOUT": 10,
            "CACHE_REDIS_READ_TIMEOUT": 10,
            "CACHE_SECRET_KEY": "cost-benchmark-secret",
        }
    )

    def price(item: int) -> str:
        return VALUE

    price.__module__, price.__qualname__ = "invalidation_cost", "price"
    decorated = cached_for(hours=1, stack=stack)(price)
    if mode != "off":
        topologies.wait_subscribed(stack)
    return stack, decorated


def subscriber(settings: dict[str, Any]) -> None:
    """A subscribed instance: say ready, wait for a line, print what its listener received."""
    stack, _ = instance(settings, CONTENDERS[2][1], "on")
    print("ready", flush=True)
    sys.stdin.readline()
    # The last writes' messages may still be on their way: report once the count stands
    # still for 0.2 s (5 s at most).
    seen, still_since, deadline = -1, time.monotonic(), time.monotonic() + 5.0
    while time.monotonic() < deadline:
        received = stack.stats()["invalidation"]["received"]
        if received != seen:
            seen, still_since = received, time.monotonic()
        elif time.monotonic() - still_since >= 0.2:
            break
        time.sleep(0.02)
    print(json.dumps(stack.stats()["invalidation"]), flush=True)
    stack.close()


def measure(
    servers: topologies.Topology, stack: Any, function: Any, kind: str, writes: int
) -> dict[str, float]:
    """``writes`` writes of ``kind``: writes a second, CPU and commands per write."""
    every, masters = servers.servers, servers.masters()
    cpu_before, commands_before = topologies.counters(every), topologies.counters(masters)
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "f.set":
        for n in range(writes):
            function.set(VALUE, n % KEYS)
    else:
        for n in range(writes):
            stack.set(f"plain{n % KEYS}", VALUE)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cpu_after, commands_after = topologies.counters(every), topologies.counters(masters)
    found = {
        "writes_per_s": writes / wall,
        "writer_cpu_us": cpu / writes * 1e6,
        "redis_cpu_us": (cpu_after["cpu_s"] - cpu_before["cpu_s"]) / writes * 1e6,
    }
    calls = {
        name: (commands_after[name] - commands_before.get(name, 0)) / writes
        for name in commands_after
        if name != "cpu_s"
    }
    found["commands"] = sum(calls.values())
    found.update({f"cmd_{name}": n for name, n in calls.items() if n >= 0.01})
    return found


def run_topology(name: str, writes: int, rounds: int) -> dict[str, Any]:
    """Start topology ``name``, the subscribers and the writers; return the medians."""
    servers = topologies.start(name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, str(Path(__file__).resolve()), "--role", "subscriber"]
    command += ["--settings", json.dumps(servers.settings)]
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(SUBSCRIBERS):
            processes.append(
                subprocess.Popen(
                    command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
            )
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise SystemExit(f"a subscriber did not start ({process.wait()})")
        writers = {label: instance(servers.settings, p, m) for label, p, m in CONTENDERS}
        for stack, function in writers.values():  # warm: connections, scripts
            measure(servers, stack, function, "f.set", 50)
            measure(servers, stack, function, "cache.set", 50)
        before = topologies.counters(servers.servers)["cpu_s"]
        time.sleep(IDLE_S)
        idle = (topologies.counters(servers.servers)["cpu_s"] - before) / IDLE_S * 1e6
        seen: dict[str, list[dict[str, float]]] = {}
        for _ in range(rounds):
            for label, (stack, function) in writers.items():
                for kind in KINDS:
                    seen.setdefault(f"{kind} | {label}", []).append(
                        measure(servers, stack, function, kind, writes)
                    )
        channels = []  # each subscriber's stats()["invalidation"]
        for process in processes:
            out, _ = process.communicate("stop\n", timeout=60)
            channels.append(json.loads(out.splitlines()[-1]))
        for stack, _ in writers.values():
            stack.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        servers.stop()
    medians = {
        case: {
            field: statistics.median(r.get(field, 0.0) for r in runs)
            for field in {f for r in runs for f in r}
        }
        for case, runs in seen.items()
    }
    return {
        "writes": writes,
        "rounds": rounds,
        "cases": medians,
        "received": [channel["received"] for channel in channels],
        "flushes_after_loss": [channel["flushes_after_loss"] for channel in channels],
        "redis_idle_cpu_us_per_s": idle,
    }


def report(name: str, figures: dict[str, Any]) -> None:
    """Print one topology's table."""
    print(
        f"\n{name}: {figures['writes']:,} writes x {figures['rounds']} rounds (medians);"
        f" each subscriber received {figures['received']} messages"
        f" (flushes after a loss: {figures['flushes_after_loss']}); Redis idle:"
        f" {figures['redis_idle_cpu_us_per_s']:,.0f} us of CPU a second"
    )
    print(
        f"{'write':10s}{'contender':20s}{'writes/s':>10s}{'ratio':>7s}{'writer CPU':>12s}"
        f"{'Redis CPU':>11s}{'commands':>10s}  per write"
    )
    for kind in KINDS:
        base = figures["cases"][f"{kind} | off"]["writes_per_s"]
        for label, _, _ in CONTENDERS:
            case = figures["cases"][f"{kind} | {label}"]
            detail = ", ".join(
                f"{k.removeprefix('cmd_')} {v:.2f}"
                for k, v in sorted(case.items())
                if k.startswith("cmd_")
            )
            print(
                f"{kind:10s}{label:20s}{case['writes_per_s']:10,.0f}"
                f"{case['writes_per_s'] / base:6.2f}x{case['writer_cpu_us']:9.1f} us"
                f"{case['redis_cpu_us']:8.1f} us{case['commands']:10.2f}  {detail}"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the measurement (or a subscriber, with ``--role``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few hundred writes: seconds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--writes", type=int, default=2_000, help="writes per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--topology", action="append", choices=["single", "cluster"], help="default: both"
    )
    parser.add_argument("--role", choices=["subscriber"], help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "subscriber":
        subscriber(args.settings)
        return 0
    writes, rounds = (200, 1) if args.smoke else (args.writes, args.rounds)
    figures = {}
    for name in args.topology or ["single", "cluster"]:
        figures[name] = run_topology(name, writes, rounds)
        report(name, figures[name])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
