"""Issue 11 item 5: ``at_most_once`` under small, non-outage events (scenario 105).

16 callers (4 worker processes of 4 threads, fresh interpreters that import this module) call
one ``at_most_once`` function of 0.8 s at once, against a dedicated redis-server, while the
test makes one event real on that server:

* a reply slower than the read timeout (``DEBUG SLEEP`` 0.5 s, read timeout 0.2 s), when the
  callers ask for the lock, or while they wait for the holder;
* writes paused (``CLIENT PAUSE 400 WRITE``), at the same two moments;
* the lock key evicted (``maxmemory`` + ``allkeys-lru``, filler data written until the lock
  is gone) while its holder computes;
* ``CACHE_ATOMIC_LOCK_TIMEOUT=1e30``: refused at start-up; the largest accepted value
  (86400) coordinates as the default does.

Each case counts the computations and the distinct results the 16 callers got; the control
(no event) gives 1 and 1.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

import stratacache
from stratacache import CacheStack, ConfigurationError, cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer

from .figures import record
from .test_atomic_writes import _Worker

PREFIX = "amo_"
PROCESSES, THREADS = 4, 4
COMPUTE = 0.8  # seconds: the event happens while the holder computes
READ_TIMEOUT = 0.2
SLEEP_MS = 500  # DEBUG SLEEP: every reply in that window is slower than the read timeout
PAUSE_MS = 400  # CLIENT PAUSE WRITE
MAX_LOCK = 86400  # the largest CACHE_ATOMIC_LOCK_TIMEOUT accepted


# -- what the workers run ------------------------------------------------------------------

_computations: list[str] = []


@cached_for(minutes=5, atomic_writes="at_most_once")
def amo_value(case: str) -> str:
    """Compute for COMPUTE seconds; the result is unique to this computation."""
    nonce = f"{os.getpid()}-{secrets.token_hex(4)}"
    _computations.append(nonce)
    time.sleep(COMPUTE)
    return nonce


def callers_main() -> None:
    """One worker: THREADS threads call amo_value(CASE) on ``go``; prints what they got."""
    case = os.environ["CASE"]
    backend = stratacache.cache.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    backend.client.ping()
    results: list[str] = []
    errors: list[str] = []
    latencies: list[float] = []
    start = threading.Barrier(THREADS + 1)

    def caller() -> None:
        start.wait()
        began = time.monotonic()
        try:
            results.append(amo_value(case))
        except Exception as exc:  # reported to the test
            errors.append(repr(exc))
        latencies.append(time.monotonic() - began)

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    input()
    start.wait()
    for thread in threads:
        thread.join()
    report = {
        "results": results,
        "errors": errors,
        "computations": _computations,
        "latency": max(latencies),
    }
    print(json.dumps(report), flush=True)


# -- the events ------------------------------------------------------------------------------


def _in_thread(action: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def _wait_for_lock(raw: redis.Redis, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not raw.keys(PREFIX + "__lock__:*"):
        assert time.monotonic() < deadline, "no caller took the lock"
        time.sleep(0.002)


def _slow_reply(server: RedisServer) -> Callable[[], None]:
    def sleep() -> None:
        with server.client() as admin:
            admin.execute_command("DEBUG", "SLEEP", SLEEP_MS / 1000)

    return lambda: _in_thread(sleep) and None


def _pause_writes(server: RedisServer) -> Callable[[], None]:
    def pause() -> None:
        with server.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")

    return pause


def _evict_the_lock(server: RedisServer, raw: redis.Redis) -> None:
    """Write filler until the lock key is evicted (EXISTS does not touch its LRU clock)."""
    filler = b"x" * 8192
    deadline = time.monotonic() + COMPUTE / 2
    n = 0
    while raw.keys(PREFIX + "__lock__:*"):
        assert time.monotonic() < deadline, "the lock was not evicted in time"
        with raw.pipeline(transaction=False) as pipe:
            for _ in range(50):
                pipe.set(f"filler:{n}", filler)
                n += 1
            pipe.execute()
    assert int(raw.info("stats")["evicted_keys"]) > 0


# -- driving one case ------------------------------------------------------------------------


@pytest.fixture
def run_case(tmp_path: Any) -> Iterator[Callable[..., dict[str, Any]]]:
    """Run the 16 callers of one case; return their computations, results and errors."""
    started: list[_Worker] = []

    def run(
        server: RedisServer,
        case: str,
        *,
        before_go: Callable[[], None] | None = None,
        at_lock: Callable[[redis.Redis], None] | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        env = clean_env(
            CACHE_TYPE="RedisCacheAtomic",
            CACHE_REDIS_URL=server.url,
            CACHE_KEY_PREFIX=PREFIX,
            CACHE_REDIS_READ_TIMEOUT=str(READ_TIMEOUT),
            CASE=case,
            PYTHONPATH=root_pythonpath(),
            **{k: str(v) for k, v in settings.items()},
        )
        workers = [
            _Worker("callers_main", env, tmp_path / f"{case}-{i}.log", module=__name__)
            for i in range(PROCESSES)
        ]
        started.extend(workers)
        for worker in workers:
            assert worker.expect() == "ready"
        with server.client() as raw:
            if before_go is not None:
                before_go()
                time.sleep(0.02)  # the event is on before the callers ask for the lock
            for worker in workers:
                worker.send("go")
            if at_lock is not None:
                _wait_for_lock(raw)
                at_lock(raw)
            reports = [worker.result() for worker in workers]
        results = [r for report in reports for r in report["results"]]
        return {
            "computations": sum(len(report["computations"]) for report in reports),
            "distinct results": len(set(results)),
            "callers answered": len(results),
            "exceptions": sum(len(report["errors"]) for report in reports),
            "slowest caller (s)": round(max(report["latency"] for report in reports), 2),
            "errors": [e for report in reports for e in report["errors"]][:3],
        }

    yield run
    for worker in started:
        worker.close()


@contextmanager
def _evicting(server: RedisServer) -> Iterator[None]:
    with server.client() as raw:
        raw.config_set("maxmemory", 4 * 1024 * 1024)
        raw.config_set("maxmemory-policy", "allkeys-lru")
        try:
            yield
        finally:
            raw.config_set("maxmemory", 0)
            raw.config_set("maxmemory-policy", "noeviction")


@pytest.mark.subprocess
def test_5_at_most_once_under_small_events(
    make_redis_server: Callable[[], RedisServer],
    run_case: Callable[..., dict[str, Any]],
) -> None:
    server = make_redis_server()
    rows: list[dict[str, Any]] = []

    def case(name: str, **kwargs: Any) -> dict[str, Any]:
        server.client().flushall()
        outcome = run_case(server, name, **kwargs)
        rows.append({"event": name, **{k: v for k, v in outcome.items() if k != "errors"}})
        return outcome

    case("control")
    case("reply slower than the read timeout, at the lock request", before_go=_slow_reply(server))
    case(
        "reply slower than the read timeout, while waiting",
        at_lock=lambda raw: _slow_reply(server)(),
    )
    case("CLIENT PAUSE WRITE 0.4 s, at the lock request", before_go=_pause_writes(server))
    case("CLIENT PAUSE WRITE 0.4 s, while waiting", at_lock=lambda raw: _pause_writes(server)())
    with _evicting(server):
        case("lock key evicted (allkeys-lru)", at_lock=lambda raw: _evict_the_lock(server, raw))

    refused = ""
    try:
        CacheStack().configure(
            {
                "CACHE_TYPE": "RedisCacheAtomic",
                "CACHE_REDIS_URL": server.url,
                "CACHE_ATOMIC_LOCK_TIMEOUT": 1e30,
            }
        )
    except ConfigurationError as exc:
        refused = str(exc)
    rows.append({"event": "CACHE_ATOMIC_LOCK_TIMEOUT=1e30", "computations": "refused at start-up"})
    case(
        f"CACHE_ATOMIC_LOCK_TIMEOUT={MAX_LOCK} (the largest accepted)",
        CACHE_ATOMIC_LOCK_TIMEOUT=MAX_LOCK,
    )

    print(json.dumps(rows, indent=1))
    record(
        105,
        "Hardening 11.5: at_most_once under small, non-outage events",
        requirement="16 callers (4 processes x 4 threads): one computation and one result"
        " under a slow reply or paused writes; under an evicted lock one result; a lock"
        " timeout of 1e30 refused at start-up",
        figures={"cases": len(rows)},
        table=rows,
    )
    assert "CACHE_ATOMIC_LOCK_TIMEOUT" in refused and "86400" in refused
