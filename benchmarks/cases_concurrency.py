"""Concurrency: shared-hit throughput with 1, 2, 4 and 8 processes, against raw redis-py.

For each process count, that many worker processes are forked once. Each builds both
contenders: a ``cached_for`` function on RedisCache with the local layer off (every call a
shared hit) and raw redis-py ``GET`` + ``pickle.loads``. In a round, every worker runs the
same contender in a timed loop, all starting together at a barrier; the round's figure is
the sum over the workers of their calls per second. Rounds alternate the contenders.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import pickle
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

import redis
from harness import measure_rounds
from model import CaseResult, Context, Table, check, make_table
from shared_hit import VALUE, rates

from stratacache import CacheStack, cached_for

CASES = ("concurrency",)

PROCESSES = (1, 2, 4, 8)
RAW = "raw redis-py GET + pickle.loads"
STRATACACHE = "stratacache cached_for (RedisCache)"
RAW_KEY = "concurrency:raw"
PREFIX = "concurrency_"
CHUNK = 10
"""Calls between two looks at the clock."""
START_TIMEOUT = 60.0
"""Seconds a worker may take to start, or to answer beyond its round's length."""

Build = Callable[[], dict[str, Callable[[], Any]]]
"""Builds the contenders of a worker, by name, in the worker (after the fork)."""


def _receive(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"a benchmark worker did not answer within {timeout:.0f} s")
    return conn.recv()


def contenders(port: int) -> dict[str, Callable[[], Any]]:
    """Both contenders, with connections of their own (build them in the worker)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "CACHE_KEY_PREFIX": PREFIX,
            "LOCALCACHE_TYPE": "NullCache",
        }
    )

    def raw_get() -> Any:
        return pickle.loads(client.get(RAW_KEY))  # type: ignore[arg-type]

    return {
        RAW: raw_get,
        STRATACACHE: functools.partial(cached_for(minutes=10, stack=stack)(rates), "EUR"),
    }


def processes(count: int) -> str:
    """``"1 process"``, ``"2 processes"``."""
    return f"{count} process{'es' if count > 1 else ''}"


def worker(conn: Connection, barrier: Barrier, build: Build) -> None:
    """Serve rounds: receive ``(contender, seconds)``, loop that long, send back the count."""
    cases = build()
    for case in cases.values():
        for _ in range(20):
            assert case() == VALUE
    conn.send("ready")
    while (order := conn.recv()) is not None:
        name, seconds = order
        func = cases[name]
        barrier.wait()
        calls, start = 0, time.perf_counter_ns()
        deadline = start + int(seconds * 1e9)
        while True:
            for _ in range(CHUNK):
                func()
            calls += CHUNK
            now = time.perf_counter_ns()
            if now >= deadline:
                break
        conn.send((calls, now - start))


class Workers:
    """``count`` forked workers that run timed rounds together, each with ``build()``."""

    def __init__(self, count: int, build: Build) -> None:
        context = multiprocessing.get_context("fork")
        barrier = context.Barrier(count)
        self.conns: list[Connection] = []
        self.processes = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(child, barrier, build), daemon=True)
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        for conn in self.conns:
            assert _receive(conn, START_TIMEOUT) == "ready"

    def round(self, name: str, seconds: float) -> float:
        """Run ``name`` in every worker for ``seconds``; return the summed calls per second."""
        for conn in self.conns:
            conn.send((name, seconds))
        results = [_receive(conn, seconds + START_TIMEOUT) for conn in self.conns]
        return sum(calls * 1e9 / elapsed for calls, elapsed in results)

    def close(self) -> None:
        """Stop the workers and reap them."""
        for conn in self.conns:
            with contextlib.suppress(OSError):  # the worker is gone
                conn.send(None)
            conn.close()
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():  # stuck at the barrier after another worker failed
                process.terminate()
                process.join(timeout=10)


def throughput(
    build: Build,
    count: int,
    rounds: int,
    seconds: float,
    *,
    names: Sequence[str] = (RAW, STRATACACHE),
    title: str = "shared-hit throughput",
) -> Table:
    """Measure the contenders ``names`` of ``build`` with ``count`` processes.

    The first of ``names`` is the anchor of the table.
    """
    workers = Workers(count, build)
    try:
        cases = {name: functools.partial(workers.round, name, seconds) for name in names}
        samples = measure_rounds(cases, rounds)
    finally:
        workers.close()
    return make_table(
        f"{title}, {processes(count)}", samples, names[0], unit="ops/s", higher_is_better=True
    )


def run(ctx: Context) -> list[CaseResult]:
    """Measure throughput at each process count; check each against 0.85x raw."""
    client = ctx.server.client()
    client.set(RAW_KEY, pickle.dumps(VALUE, pickle.HIGHEST_PROTOCOL))
    assert contenders(ctx.server.port)[STRATACACHE]() == VALUE  # the miss that writes it
    rounds, seconds = ctx.pick((10, 0.5), (1, 0.2))
    build = functools.partial(contenders, ctx.server.port)
    tables = [throughput(build, count, rounds, seconds) for count in PROCESSES]
    checks = [
        check(
            "concurrency",
            table,
            STRATACACHE,
            f">= 0.85x raw with {processes(count)}",
            short=f"{processes(count)}, ops/s vs raw",
            at_least=0.85,
            label=f"{STRATACACHE}, {count} proc.",
        )
        for count, table in zip(PROCESSES, tables, strict=True)
    ]
    return [CaseResult("concurrency", tables, checks)]
