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
from pathlib import Path
from typing import Any

import pytest
import redis

import stratacache
from stratacache import NO_VALUE, CacheStack, Computation, ConfigurationError, cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic
from stratacache_plugins.rediscache.plans import run_plan
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
FROZEN_WAIT = 1.0  # CACHE_ATOMIC_OUTAGE_AFTER of the outage case
EVICTED_CHANNEL = "__keyevent@0__:evicted"


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


def _wait_for_lock(raw: redis.Redis, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not raw.keys(PREFIX + "__lock__:*"):
        assert time.monotonic() < deadline, "no caller took the lock"
        time.sleep(0.002)


def _slow_reply(server: RedisServer) -> None:
    """Every reply of the next SLEEP_MS is slower than the read timeout (DEBUG SLEEP)."""

    def sleep() -> None:
        with server.client() as admin:
            admin.execute_command("DEBUG", "SLEEP", SLEEP_MS / 1000)

    threading.Thread(target=sleep, daemon=True).start()


def _pause_writes(server: RedisServer) -> None:
    """Writes wait PAUSE_MS (reads are served): what a failover does for a moment."""
    with server.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")


def _evict_the_lock(raw: redis.Redis) -> None:
    """Write filler until a lock key is evicted (``evicted`` keyspace events tell)."""
    filler = b"x" * 8192
    deadline = time.monotonic() + COMPUTE / 2
    n = 0
    with raw.pubsub() as events:
        events.subscribe(EVICTED_CHANNEL)
        while not _lock_evictions(events):
            assert time.monotonic() < deadline, "the lock was not evicted in time"
            with raw.pipeline(transaction=False) as pipe:
                for _ in range(10):
                    pipe.set(f"filler:{n}", filler)
                    n += 1
                pipe.execute()


def _lock_evictions(events: redis.client.PubSub, wait: float = 0.0) -> int:
    """How many lock keys the events received so far say were evicted."""
    count = 0
    while (message := events.get_message(timeout=wait)) is not None:
        if message["type"] == "message" and b"__lock__:" in message["data"]:
            count += 1
    return count


@contextmanager
def _evicting(server: RedisServer) -> Iterator[redis.client.PubSub]:
    """``maxmemory`` 4 MB with ``allkeys-lru``: filler data evicts other keys.

    Yields a subscription to the ``evicted`` keyspace events, to count the evicted locks.
    """
    with server.client() as raw, raw.pubsub() as events:
        raw.config_set("notify-keyspace-events", "Ee")
        raw.config_set("maxmemory", 4 * 1024 * 1024)
        raw.config_set("maxmemory-policy", "allkeys-lru")
        events.subscribe(EVICTED_CHANNEL)
        try:
            yield events
        finally:
            raw.config_set("maxmemory", 0)
            raw.config_set("maxmemory-policy", "noeviction")
            raw.config_set("notify-keyspace-events", "")


# -- driving one case ------------------------------------------------------------------------


@pytest.fixture
def run_case(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """Run the 16 callers of one case; return their computations, results and errors.

    ``before_go`` makes the event real just before the callers start (so their lock requests
    meet it); ``at_lock`` once a caller holds the lock (so the others meet it as they wait).
    """
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
            _Worker("callers_main", env, tmp_path / f"worker{len(started) + i}.log", __name__)
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
        }

    yield run
    for worker in started:
        worker.close()


def _refused_lock_timeout(url: str) -> str:
    """The start-up error for ``CACHE_ATOMIC_LOCK_TIMEOUT=1e30`` (empty if accepted)."""
    settings = {"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": url}
    try:
        CacheStack().configure({**settings, "CACHE_ATOMIC_LOCK_TIMEOUT": 1e30})
    except ConfigurationError as exc:
        return str(exc)
    return ""


SLOW = f"a reply slower than the read timeout (DEBUG SLEEP {SLEEP_MS / 1000:g} s)"
PAUSED = f"CLIENT PAUSE WRITE {PAUSE_MS / 1000:g} s"
EVICTED = "the lock key evicted (maxmemory, allkeys-lru, filler data)"
FROZEN = f"Redis frozen (SIGSTOP) past CACHE_ATOMIC_OUTAGE_AFTER={FROZEN_WAIT:g} s: an outage"


@pytest.mark.subprocess
def test_5_at_most_once_under_small_events(
    make_redis_server: Callable[[], RedisServer],
    run_case: Callable[..., dict[str, Any]],
) -> None:
    server = make_redis_server()
    rows: list[dict[str, Any]] = []

    def case(event: str, moment: str, **kwargs: Any) -> dict[str, Any]:
        server.client().flushall()
        row = {"event": event, "when": moment, **run_case(server, f"{event} {moment}", **kwargs)}
        rows.append(row)
        return row

    held = [case("none (the control)", "")]
    held.append(case(SLOW, "at the lock requests", before_go=lambda: _slow_reply(server)))
    held.append(case(SLOW, "while waiting", at_lock=lambda _: _slow_reply(server)))
    held.append(case(PAUSED, "at the lock requests", before_go=lambda: _pause_writes(server)))
    held.append(case(PAUSED, "while waiting", at_lock=lambda _: _pause_writes(server)))
    with _evicting(server) as events:
        evicted = case(EVICTED, "while the holder computes", at_lock=_evict_the_lock)
        evicted["locks evicted"] = _lock_evictions(events, wait=0.2)
    refused = _refused_lock_timeout(server.url)
    rows.append(
        {"event": "CACHE_ATOMIC_LOCK_TIMEOUT=1e30", "when": "start-up", "computations": "refused"}
    )
    held.append(
        case(
            f"CACHE_ATOMIC_LOCK_TIMEOUT={MAX_LOCK} (the largest accepted)",
            "",
            **{"CACHE_ATOMIC_LOCK_TIMEOUT": MAX_LOCK},
        )
    )
    resume = threading.Timer(FROZEN_WAIT + 2 * COMPUTE + 1, server.resume)
    try:
        frozen = case(
            FROZEN, "from the start", before_go=server.pause, CACHE_ATOMIC_OUTAGE_AFTER=FROZEN_WAIT
        )
    finally:
        resume.start()
        resume.join()

    record(
        105,
        "Hardening 11.5: at_most_once under small, non-outage events",
        requirement="16 callers (4 processes x 4 threads) of a 0.8 s function: 1 computation"
        " and 1 result under a slow reply or paused writes (4 and 4 before); under an evicted"
        " lock 1 result and at most 1 more computation per evicted lock (2 and 2 before,"
        " one eviction); a lock timeout of 1e30"
        " refused at start-up, naming the key, the value and the bound; a frozen Redis (an"
        " outage) lets each process compute after CACHE_ATOMIC_OUTAGE_AFTER, no caller waits"
        " longer",
        figures={
            "cases": len(rows),
            "computations under slow reply / paused writes": max(r["computations"] for r in held),
            "distinct results under slow reply / paused writes": max(
                r["distinct results"] for r in held
            ),
            "computations / results, lock evicted": f"{evicted['computations']} /"
            f" {evicted['distinct results']}",
        },
        table=rows,
    )
    for row in held:
        assert (row["computations"], row["distinct results"], row["exceptions"]) == (1, 1, 0), row
    assert evicted["locks evicted"] >= 1, "the lock was evicted, not expired"
    assert evicted["computations"] <= 1 + evicted["locks evicted"], evicted
    assert evicted["distinct results"] == 1, evicted
    assert evicted["exceptions"] == 0
    assert "CACHE_ATOMIC_LOCK_TIMEOUT=1e+30" in refused, refused
    assert "at most 86400" in refused, refused
    assert frozen["exceptions"] == 0
    assert frozen["callers answered"] == PROCESSES * THREADS
    assert frozen["computations"] <= PROCESSES, "one per process (single flight)"
    assert frozen["slowest caller (s)"] <= FROZEN_WAIT + 2 * READ_TIMEOUT + COMPUTE + 1.0


# -- the pieces, one caller at a time ----------------------------------------------------------

KEY = "{tests.reliability.test_hardening_atomic.direct}(1,)"
GROUP = "tests.reliability.test_hardening_atomic.direct"


def test_5_one_token_per_wait_recognizes_its_own_lock(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    backend = RedisCacheAtomic(url=redis_server.url, key_prefix=PREFIX, lock_timeout=5)
    with redis_server.client() as raw:
        lock = backend._lock_key(KEY)
        raw.set(lock, "mine", px=1000)  # as a request whose reply timed out would have left it
        assert run_plan(backend, backend._acquire(KEY, "mine")) is True
        assert 1000 < raw.pttl(lock) <= 5000, "taken again for a whole lock_timeout"
        assert run_plan(backend, backend._acquire(KEY, "theirs")) is False
        raw.delete(lock)
        assert run_plan(backend, backend._acquire(KEY, "theirs")) is True
        assert raw.get(lock) == b"theirs"


def test_5_a_holder_without_its_lock_lets_one_value_win(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.client().flushall()
    backend = RedisCacheAtomic(url=redis_server.url, key_prefix=PREFIX, lock_timeout=5)
    with redis_server.client() as raw:
        # The lock is gone (evicted) and nobody holds it: the holder's value is stored.
        computation = backend.start_computation(KEY, 60, GROUP, "at_most_once")
        raw.delete(backend._lock_key(KEY))
        assert computation.commit("first") == "first"
        assert computation.stored
        assert backend.lookup(KEY) == "first"
        assert backend.lost_locks == 1
        assert "evicted or deleted" in caplog.text
        assert "maxmemory-policy noeviction" in caplog.text

        # The lock is gone and a value is stored: the holder returns it, writes nothing.
        stale = backend.start_computation(KEY + "2", 60, GROUP, "at_most_once")
        raw.delete(backend._lock_key(KEY + "2"))
        assert backend.set(KEY + "2", "stored")
        assert stale.commit("mine") == "stored"
        assert not stale.stored
        assert backend.lookup(KEY + "2") == "stored"

        # Another caller holds a newer lock: the holder waits for that caller's value.
        late = backend.start_computation(KEY + "3", 60, GROUP, "at_most_once")
        raw.set(backend._lock_key(KEY + "3"), "newer", px=5000)
        writer = threading.Timer(0.3, lambda: _commit_as(raw, backend, KEY + "3", "newer"))
        writer.start()
        assert late.commit("mine") == "newer's value"
        writer.join()
        assert raw.get(backend._lock_key(KEY + "3")) is None, "the newer holder released it"


def _commit_as(raw: redis.Redis, backend: RedisCacheAtomic, key: str, token: str) -> None:
    """Store ``token``'s value and release its lock, as that holder's commit does."""
    assert backend.set(key, f"{token}'s value")
    assert raw.get(backend._lock_key(key)) == token.encode()
    raw.delete(backend._lock_key(key))


def test_5_a_silent_redis_is_an_outage_after_outage_after(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    backend = RedisCacheAtomic(
        url=server.url,
        key_prefix=PREFIX,
        read_timeout=READ_TIMEOUT,
        outage_after=FROZEN_WAIT,
    )
    backend.client.ping()
    server.pause()
    try:
        started = time.monotonic()
        first = backend.start_computation(KEY, 60, GROUP, "at_most_once")
        waited = time.monotonic() - started
        started = time.monotonic()
        second = backend.start_computation(KEY + "2", 60, GROUP, "at_most_once")
        later = time.monotonic() - started
    finally:
        server.resume()
    assert type(first) is Computation, "computed here, without a lock: no exception"
    assert type(second) is Computation
    assert FROZEN_WAIT <= waited <= FROZEN_WAIT + 2 * READ_TIMEOUT + 0.3
    assert later < READ_TIMEOUT + 0.1, "once Redis was silent for outage_after, at once"
    # Redis answers again: the lock is taken as before.
    time.sleep(1.0)  # the back-off ends
    assert backend.lookup("anything") is NO_VALUE
    third = backend.start_computation(KEY + "3", 60, GROUP, "at_most_once")
    assert type(third) is not Computation, "a locked computation again"
    third.abort()
