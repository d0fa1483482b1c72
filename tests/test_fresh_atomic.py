"""Freshness options with ``atomic_writes="at_most_once"``: one computation across processes.

A miss computes under RedisCacheAtomic's ``at_most_once`` lock, the lock its refreshes take
too; a caller that cannot take it waits for the holder's envelope. Real redis-servers, real
processes and threads.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from stratacache import CacheStack, cached_for
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer

MISS_PROCESS = """
import sys, threading, time
import redis
from stratacache import CacheStack, cached_for

url = sys.argv[1]
counter = redis.Redis.from_url(url)
stack = CacheStack()
stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": url})

@cached_for(seconds=30, refresh_after=0.5, fail_safe=60, atomic_writes="at_most_once",
            stack=stack)
def report(day):
    run = counter.incr("runs")
    time.sleep(0.5)
    return run

seen = []
def caller():
    seen.append(report("monday"))

counter.incr("ready")  # both processes set up (imports take seconds under load), then go
while int(counter.get("ready")) < 2:
    time.sleep(0.005)
threads = [threading.Thread(target=caller) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
counts = stack.stats()["functions"]["__main__.report"]
print(sorted(set(seen)), counts["computations"], counts["lock_waits"])
"""


def test_a_miss_computes_once_across_two_processes_of_four_threads(
    redis_server: RedisServer, redis_url: str
) -> None:
    counter = redis_server.client()
    env = clean_env(PYTHONPATH=root_pythonpath())
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MISS_PROCESS, redis_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    assert counter.get("runs") == b"1", "one computation for 8 callers in 2 processes"
    assert [out.split("]")[0] + "]" for out, _ in outputs] == ["[1]", "[1]"], outputs
    computations = [int(out.split()[-2]) for out, _ in outputs]
    waits = [int(out.split()[-1]) for out, _ in outputs]
    assert sum(computations) == 1, computations
    # The holder's 3 sibling threads wait, and so does at least one caller of the other
    # process (else the two processes did not overlap, and this proved nothing).
    assert sum(waits) >= 4, waits


def atomic_stack(url: str) -> CacheStack:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": url})
    return stack


def test_a_stale_entry_is_refreshed_under_the_same_lock(redis_url: str) -> None:
    stack = atomic_stack(redis_url)
    runs: list[int] = []

    @cached_for(seconds=2, refresh_after=0.25, atomic_writes="at_most_once", stack=stack)
    def price(item: str) -> int:
        runs.append(1)
        return len(runs)

    assert price("tea") == 1
    lock = stack._layers().every[-1].cache._lock_key(price.cache_key("tea"))  # type: ignore[attr-defined]
    time.sleep(0.6)
    client = stack._layers().every[-1].cache.client  # type: ignore[attr-defined]
    client.set(lock, "another process", px=5000)  # another host holds the key's lock
    stack.local_cache.cache.clear()
    assert price("tea") == 1, "stale, at once"
    time.sleep(0.3)
    assert runs == [1], "the lock's holder refreshes, not this process"
    client.delete(lock)
    stack.local_cache.cache.clear()
    assert price("tea") == 1
    deadline = time.monotonic() + 5
    while len(runs) < 2:
        assert time.monotonic() < deadline, "the refresh never ran once the lock was free"
        time.sleep(0.01)


def test_fail_safe_under_at_most_once_serves_the_last_value(redis_url: str) -> None:
    stack = atomic_stack(redis_url)
    failing = threading.Event()

    @cached_for(seconds=1, fail_safe=30, atomic_writes="at_most_once", stack=stack)
    def profile(user: int) -> str:
        if failing.is_set():
            raise ConnectionError("the database is down")
        return "ada"

    assert profile(1) == "ada"
    failing.set()
    time.sleep(1.1)
    assert profile(1) == "ada", "the fail-safe value"
    lock = stack._layers().every[-1].cache._lock_key(profile.cache_key(1))  # type: ignore[attr-defined]
    assert not stack._layers().every[-1].cache.client.exists(lock), "released after the failure"  # type: ignore[attr-defined]


def test_hard_timeout_under_at_most_once(redis_url: str) -> None:
    stack = atomic_stack(redis_url)

    @cached_for(seconds=30, hard_timeout=0.2, atomic_writes="at_most_once", stack=stack)
    def report(day: str) -> str:
        time.sleep(0.5)
        return day

    with pytest.raises(Exception, match="hard_timeout"):
        report("monday")
    time.sleep(0.5)
    assert report("monday") == "monday", "stored by the computation that went on"


def test_async_waiters_take_the_holders_value(redis_url: str) -> None:
    stack = atomic_stack(redis_url)
    runs: list[int] = []

    @cached_for(seconds=30, refresh_after=0.5, atomic_writes="at_most_once", stack=stack)
    async def price(item: str) -> int:
        runs.append(1)
        await asyncio.sleep(0.2)
        return len(runs)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(price("tea") for _ in range(5))))

    assert asyncio.run(main()) == [1] * 5
    assert runs == [1]
    assert stack.stats()["functions"][f"{__name__}.{price.__qualname__}"]["lock_waits"] == 4
