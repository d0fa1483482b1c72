"""The invalidation channel's costs, side by side in one run, on a redis-server of its own::

    .venv/bin/python benchmarks/invalidation.py            # 5,000 writes per contender
    .venv/bin/python benchmarks/invalidation.py --smoke    # a few hundred: seconds
    .venv/bin/python benchmarks/invalidation.py --staleness   # the 3-process run alone
    .venv/bin/python benchmarks/invalidation.py --cost     # Redis's cost, 3 subscribers

``--staleness`` runs :mod:`staleness` instead (3 real processes, the staleness window over
1,000 changes; with ``--smoke``, 60), and ``--json PATH`` writes its figures. ``--cost``
runs :mod:`invalidation_cost` instead (write throughput with 3 subscribed processes against
none, Redis's CPU and commands per write, the channel on and off, on one server and on a
Cluster).

Write path (a 100-byte value through a local tier over RedisCache, one thread, loopback;
``cache.set``, and a decorated function's tracked write), three contenders:

* ``off``: ``CACHE_INVALIDATION=off``, one ``SET``;
* ``publish``: the channel of ours, ``SET`` and ``PUBLISH`` in one pipeline (one round trip);
* ``tracking``: ``off``, plus server-assisted client-side caching on the writer's
  connections (``CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <prefix>``, the redirect to a
  RESP2 connection subscribed to ``__redis__:invalidate``): the server itself sends each
  write's invalidation, and to every tracking connection, the writer's own included.

Delivery: instance A holds a local copy, instance B writes the key; the time from B's write
returning to A's copy being gone, p50/p99/max. And the local hit with the channel on against
off: timed, and counted in instructions by callgrind (``benchmarks/callgrind.py``'s method,
which a shared machine does not disturb). Prints a table; ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "core"), str(ROOT / "plugins")]

import redis  # noqa: E402

from stratacache import NO_VALUE, CacheStack  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

VALUE = "x" * 100
# Generous timeouts: under valgrind, or on a machine shared with other jobs, a 0.5 s connect
# timeout fails where nothing is wrong.
SLOW_MACHINE = {"CACHE_REDIS_CONNECT_TIMEOUT": 10, "CACHE_REDIS_READ_TIMEOUT": 10}


def stack(url: str, mode: str) -> CacheStack:
    """One instance: SimpleCache (long timeout) over RedisCache."""
    built = CacheStack()
    built.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": "bench",
            "CACHE_INVALIDATION": mode,
            "LOCALCACHE_DEFAULT_TIMEOUT": 3600,
            **SLOW_MACHINE,
        }
    )
    return built


def per_write(target: CacheStack, writes: int) -> tuple[float, float]:
    """CPU microseconds per write, the best of three runs: a ``set``, and a tracked write.

    CPU time of the whole process (its listener thread included), not wall time: on a
    shared machine, the wall time of a round trip mostly measures the other jobs.

    The tracked write is a decorated function's (its key recorded in the function's
    tracking set, in one ``MULTI``/``EXEC``), through the engine as the decorator writes.
    """
    from stratacache import engine

    route = target.route(3600, group="bench.f")
    found = []
    for write in (
        lambda key: target.set(key, VALUE),
        lambda key: engine.write(route, key, VALUE),
    ):
        best = float("inf")
        for _ in range(3):
            start = time.process_time()  # this process's CPU, its listener thread's too
            for n in range(writes):
                write(f"{{bench.f}}k{n % 100}")
            best = min(best, (time.process_time() - start) / writes * 1e6)
        found.append(best)
    return found[0], found[1]


def with_tracking(url: str, target: CacheStack) -> redis.client.PubSub:
    """Turn on BCAST tracking for every connection of ``target``'s pool, redirected."""
    owner = redis.Redis.from_url(url, protocol=2, client_name="bench-tracking")
    listener = owner.pubsub()
    listener.owner = owner  # type: ignore[attr-defined]  # a collected client closes it
    listener.subscribe("__redis__:invalidate")
    listener.get_message(timeout=1)
    clients = redis.Redis.from_url(url).client_list(_type="pubsub")
    redirect = next(int(c["id"]) for c in clients if c["name"] == "bench-tracking")
    client: Any = target.shared_cache.cache.client
    pool = client.connection_pool
    pool.disconnect()

    def track(connection: Any) -> None:
        tracking = ("CLIENT", "TRACKING", "on", "REDIRECT", redirect, "BCAST", "PREFIX", "bench:")
        connection.send_command(*tracking)
        connection.read_response()

    original = pool.connection_class.on_connect_check_health

    def on_connect(connection: Any, check_health: bool = True) -> None:
        original(connection, check_health=check_health)
        track(connection)

    pool.connection_class.on_connect_check_health = on_connect  # every connection tracks
    listener.restore = lambda: setattr(  # type: ignore[attr-defined]
        pool.connection_class, "on_connect_check_health", original
    )

    received = [0]
    listener.received = received  # type: ignore[attr-defined]

    def drain() -> None:  # read what the server sends, as a subscriber would
        while listener.subscribed:
            try:
                message = listener.get_message(timeout=0.1)
            except (redis.RedisError, ValueError, OSError):  # closed under it: done
                return
            if message is not None and message["type"] == "message":
                received[0] += 1

    threading.Thread(target=drain, daemon=True).start()
    return listener


def delivery(url: str, changes: int) -> list[float]:
    """Milliseconds from B's write returning to A's local copy being gone, per change."""
    a, b = stack(url, "auto"), stack(url, "auto")
    seen: list[float] = []
    for n in range(changes):
        a.set("hot", n)  # A's own copy (its own write keeps it)
        b.set("hot", -n)
        start = time.perf_counter()
        while a.local_cache.cache.lookup("hot") is not NO_VALUE:
            if time.perf_counter() - start > 2:
                raise AssertionError("A's copy outlived 2 s")
        seen.append((time.perf_counter() - start) * 1000)
    a.close()
    b.close()
    return seen


def local_hit(url: str, mode: str, calls: int) -> float:
    """Nanoseconds per local hit of a decorated function."""
    from stratacache import cached_for

    target = stack(url, mode)

    @cached_for(hours=1, stack=target)
    def f(x: int) -> int:
        return x

    f(1)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            f(1)
        best = min(best, (time.perf_counter() - start) / calls * 1e9)
    target.close()
    return best


def instructions(url: str, calls: int) -> dict[str, float]:
    """Instructions per call (callgrind), the channel off and on: figures that hold.

    A local hit of a decorated function, and a ``cache.set`` (in the writer's process: its
    listener thread's work on its own messages counts; the server's does not).
    """
    from callgrind import Contender, measure

    setup = """
from stratacache import CacheStack, cached_for
stack = CacheStack()
stack.configure({{"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": {url!r},
                 "CACHE_KEY_PREFIX": "ir", "CACHE_INVALIDATION": {mode!r}, **{slow!r}}})
f = cached_for(minutes=5, stack=stack)(rates)
def write(currency):
    stack.set("written", currency)
    return RATES
"""
    tracking = (
        "\nimport sys\nsys.path.insert(0, {here!r})\nfrom invalidation import with_tracking"
        "\nlistener = with_tracking({url!r}, stack)\n"
    )
    contenders = [
        Contender(
            f"{what}_{mode}",
            f"{what}, invalidation {mode}",
            setup.format(url=url, mode=mode, slow=SLOW_MACHINE),
            statement=statement,
        )
        for what, statement in (("hit", 'f("EUR")'), ("set", 'write("EUR")'))
        for mode in ("off", "auto")
    ]
    contenders.append(
        Contender(
            "set_tracking",
            "set, CLIENT TRACKING BCAST",
            setup.format(url=url, mode="off", slow=SLOW_MACHINE)
            + tracking.format(url=url, here=str(ROOT / "benchmarks")),
            statement='write("EUR")',
        )
    )
    with tempfile.TemporaryDirectory(prefix="bench-inv-ir-") as workdir:
        found = measure(contenders, calls, 1, 2, Path(workdir))
    return {f["id"]: f["ir_per_call_mean"] for f in found.values()}


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few iterations: seconds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--staleness", action="store_true", help="the 3-process run instead")
    parser.add_argument("--cost", action="store_true", help="Redis's cost per write instead")
    args = parser.parse_args(argv)
    if args.staleness or args.cost:
        return _elsewhere(args)
    writes, changes, calls = (300, 100, 20_000) if args.smoke else (5_000, 1_000, 200_000)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-inv-"))).start()
    try:
        figures: dict[str, Any] = {}
        off = stack(server.url, "off")
        figures["write_us_off"], figures["tracked_us_off"] = per_write(off, writes)
        on = stack(server.url, "on")
        figures["write_us_publish"], figures["tracked_us_publish"] = per_write(on, writes)
        on.close()
        listener = with_tracking(server.url, off)
        figures["write_us_tracking"], figures["tracked_us_tracking"] = per_write(off, writes)
        time.sleep(0.2)
        figures["tracking_invalidations_received"] = listener.received[0]  # type: ignore[attr-defined]
        listener.restore()  # type: ignore[attr-defined]
        listener.close()
        off.close()
        latencies = delivery(server.url, changes)
        q = statistics.quantiles(latencies, n=100)
        figures.update(
            delivery_ms_p50=statistics.median(latencies),
            delivery_ms_p99=q[98],
            delivery_ms_max=max(latencies),
            local_hit_ns_off=local_hit(server.url, "off", calls),
            local_hit_ns_on=local_hit(server.url, "auto", calls),
        )
        if not args.no_callgrind:
            ir = instructions(server.url, 300 if args.smoke else 3_000)
            figures.update(
                local_hit_ir_off=ir["hit_off"],
                local_hit_ir_on=ir["hit_auto"],
                set_ir_off=ir["set_off"],
                set_ir_on=ir["set_auto"],
                set_ir_tracking=ir["set_tracking"],
            )
    finally:
        server.stop()
    print("CPU per write (the process's, its listener thread included):")
    for kind, label in (("write", "set"), ("tracked", "tracked write")):
        base = figures[f"{kind}_us_off"]
        for name in ("off", "publish", "tracking"):
            value = figures[f"{kind}_us_{name}"]
            print(f"{label}, {name + ':':9s}{value:8.1f} us   {value / base:.2f}x")
    print(f"tracking: {figures['tracking_invalidations_received']} invalidations received")
    print(
        f"delivery ({changes} changes): p50 {figures['delivery_ms_p50']:.3f} ms,"
        f" p99 {figures['delivery_ms_p99']:.3f} ms, max {figures['delivery_ms_max']:.3f} ms"
    )
    hit_off, hit_on = figures["local_hit_ns_off"], figures["local_hit_ns_on"]
    print(f"local hit: off {hit_off:.0f} ns, on {hit_on:.0f} ns, {hit_on / hit_off:.2f}x")
    if "local_hit_ir_off" in figures:
        ir_off, ir_on = figures["local_hit_ir_off"], figures["local_hit_ir_on"]
        print(f"local hit: off {ir_off:.0f} Ir, on {ir_on:.0f} Ir, {ir_on / ir_off:.3f}x")
        ir_off, ir_on, ir_tr = (figures[f"set_ir_{m}"] for m in ("off", "on", "tracking"))
        print(
            f"set: off {ir_off:.0f} Ir, publish {ir_on:.0f} Ir ({ir_on / ir_off:.2f}x),"
            f" tracking {ir_tr:.0f} Ir ({ir_tr / ir_off:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _elsewhere(args: argparse.Namespace) -> int:
    """Run ``--staleness`` or ``--cost``: each a module of its own."""
    import invalidation_cost
    import staleness

    run = staleness.main if args.staleness else invalidation_cost.main
    return run([*(["--smoke"] if args.smoke else []), *_json(args.json)])


def _json(path: Path | None) -> list[str]:
    return [] if path is None else ["--json", str(path)]


if __name__ == "__main__":
    sys.exit(main())
