"""Issue 11, the engine's items: fork safety (1), invalidations that win (7), failing leaders (10).

Each test runs against a real redis-server (the suite's) and real threads or processes, and
records its figures for ``docs/reliability.md`` (scenarios 101, 107 and 110).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stratacache import CacheStack, cached_for
from tests.conftest import clean_env

from .figures import record

MODES = [None, "at_most_once", "at_least_once"]


def atomic_stack(redis_url: str) -> CacheStack:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": redis_url})
    return stack


FORK_SCRIPT = """
import json, os, sys, threading, time
import stratacache
from stratacache import cached_for

stratacache.configure(json.loads(sys.argv[1]))
offset = int(sys.argv[2])  # the children's keys: the parent's own (0) or others (100)
parent, release = os.getpid(), threading.Event()

@cached_for(minutes=5, atomic_writes="at_most_once")
def price(n):
    if os.getpid() == parent:
        release.wait(30)  # the parent's threads stay inside the computation
    return n * 10

threads = [threading.Thread(target=price, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
time.sleep(0.3)
outcomes = []
for _ in range(30):
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            keys = [n + offset for n in range(4)]
            ok = [price(n) for n in keys] == [n * 10 for n in keys]
        finally:
            os._exit(0 if ok else 3)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            outcomes.append(os.waitstatus_to_exitcode(status))
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            outcomes.append("hung")
            break
        time.sleep(0.01)
release.set()
for t in threads:
    t.join()
print(json.dumps(outcomes))
"""


@pytest.mark.parametrize("shared", ["FileSystemCache", "RedisCacheAtomic"])
def test_children_forked_while_threads_compute_never_hang(
    redis_url: str, tmp_path: Path, shared: str
) -> None:
    # Four threads are inside atomic_writes computations (holding flights, and the tiers'
    # locks in turn) when the process forks 30 times. With a shared tier that coordinates
    # nothing across processes, each child computes the very keys the parent's threads
    # were computing (their flights were inherited); on Redis, whose at_most_once locks the
    # parent's threads hold (a child rightly waits for those), it computes other keys.
    config = (
        {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")}
        if shared == "FileSystemCache"
        else {"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": redis_url}
    )
    offset = 0 if shared == "FileSystemCache" else 100
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, json.dumps(config), str(offset)],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    record(
        101,
        "Hardening 11.1: fork() while 4 threads compute under atomic_writes",
        requirement="every child forked mid-computation computes its values; none hangs",
        figures={
            "shared tier": shared,
            "children": len(outcomes),
            "children that hung": outcomes.count("hung"),
            "children that failed": sum(1 for o in outcomes if o not in (0, "hung")),
            "seconds for all": round(time.monotonic() - started, 2),
        },
        name=shared,
    )
    assert outcomes == [0] * 30


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m or "plain")
def test_an_invalidation_wins_over_a_computation_already_running(
    redis_url: str, mode: str | None
) -> None:
    stack = atomic_stack(redis_url)
    prices = {"tea": 1.0}
    started, proceed = threading.Event(), threading.Event()

    @cached_for(minutes=5, stack=stack, atomic_writes=mode)  # type: ignore[arg-type]
    def price(item: str) -> float:
        value = prices[item]  # read the data first, as a real function does
        started.set()
        proceed.wait(5)
        return value

    stale: list[float] = []
    slow = threading.Thread(target=lambda: stale.append(price("tea")))
    slow.start()
    assert started.wait(5)
    prices["tea"] = 2.0  # the update...
    price.invalidate("tea")  # ...and its invalidation, while the old value is computed
    proceed.set()
    slow.join(10)
    later = [price("tea") for _ in range(3)]
    record(
        107,
        "Hardening 11.7: invalidate() during a running computation",
        requirement="after an update and an invalidate, no caller gets the old value",
        figures={
            "mode": mode or "no atomic_writes",
            "the running caller got": stale[0],
            "callers after it got": later,
        },
        name=mode or "plain",
    )
    assert stale == [1.0]  # the running caller gets what it computed...
    assert later == [2.0, 2.0, 2.0]  # ...but no tier kept it


def test_clear_cache_wins_over_a_computation_already_running(redis_url: str) -> None:
    stack = atomic_stack(redis_url)
    version = ["old"]
    started, proceed = threading.Event(), threading.Event()

    @cached_for(minutes=5, stack=stack)
    def config() -> str:
        value = version[0]
        started.set()
        proceed.wait(5)
        return value

    slow = threading.Thread(target=config)
    slow.start()
    assert started.wait(5)
    version[0] = "new"
    config.clear_cache()
    proceed.set()
    slow.join(10)
    assert config() == "new"


@pytest.mark.parametrize("mode", ["at_most_once", "at_least_once"])
def test_the_waiters_of_a_failing_leader_fail_with_it(redis_url: str, mode: str) -> None:
    stack = atomic_stack(redis_url)
    runs = 0

    @cached_for(minutes=5, stack=stack, atomic_writes=mode)  # type: ignore[arg-type]
    def flaky() -> int:
        nonlocal runs
        runs += 1
        time.sleep(0.2)
        raise RuntimeError("the database is down")

    waits: list[float] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="database is down"):
            flaky()
        waits.append(time.monotonic() - start)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    record(
        110,
        "Hardening 11.10: 16 callers of a function that fails after 0.2 s",
        requirement="the waiters of a failed leader get its exception: one attempt per wave",
        figures={
            "attempts": runs,
            "longest wait (s)": round(max(waits), 2),
            "callers that got the exception": len(waits),
        },
        name=mode,
    )
    assert len(waits) == 16
    assert runs <= 2  # one wave (a caller arriving after the leader failed may lead a second)
    assert max(waits) < 1.0  # not 16 attempts in turn (3.2 s)
