"""RedisCacheAtomic: coordination across processes, against real redis-servers and processes.

The cross-process tests run fresh interpreters that import this module (``PYTHONPATH`` is the
repository root), so parent and children share the decorated functions below and therefore
their keys. Each decorated function counts its computations in Redis with ``INCR``.

Helpers that need an exact interleaving park a client inside Redis with ``CLIENT PAUSE
WRITE`` (reads go on, writes wait), then kill or release it: no timing guesses.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from redis.crc import key_slot

import stratacache
from stratacache import NO_VALUE, CacheError, CacheStack, cached_for
from stratacache.keys import function_name
from stratacache_plugins.rediscache import AtomicWaitTimeout, RedisCacheAtomic

from .conftest import clean_env, root_pythonpath
from .redis_server import RedisServer

PREFIX = "atomic_"
COMPUTE_SECONDS = 0.02
MODES = ["at_most_once", "at_least_once"]
# A decorator-style key and its group, for the tests that drive the backend directly.
GROUP = "tests.test_redis_atomic.direct"
KEY = "{tests.test_redis_atomic.direct}(1,)"
# Commands a test's own inspection adds to the server's counts.
# Commands no cached call sends: the test's own, the connections' handshakes, and the PING the
# invalidation listener sends on its quiet channel (every 0.5 s, on its own connection).
INSPECTION = {"hello", "info", "client|setinfo", "config|resetstat", "ping"}


# -- decorated functions, shared with the child processes -----------------------------------


def _shared_client() -> redis.Redis:
    """The redis-py client of the shared layer of ``stratacache.cache``."""
    backend = stratacache.cache.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    return backend.client


def _count_computation(name: str) -> int:
    return int(_shared_client().incr(f"computations:{name}"))


def _computations(client: redis.Redis, name: str) -> int:
    return int(client.get(f"computations:{name}") or 0)


def _report(mode: str, n: int) -> dict[str, Any]:
    computation = _count_computation(f"{mode}:{n}")
    time.sleep(COMPUTE_SECONDS)  # widens the races
    return {"n": n, "pid": os.getpid(), "computation": computation, "nonce": secrets.token_hex(8)}


@cached_for(minutes=5, atomic_writes="at_least_once")
def at_least_once_report(n: int) -> dict[str, Any]:
    return _report("at_least_once", n)


RACERS = {"at_least_once": at_least_once_report}


# -- child process entry points --------------------------------------------------------------


def race_main() -> None:
    """Child: RACE_THREADS threads call RACE_MODE's function for RACE_KEYS keys.

    Prints ``ready``, starts every thread together when a line arrives on stdin, then prints
    the values each call returned as JSON. Thread ``i`` of every process visits the keys in
    the same order, so the processes contend for the same keys at the same moment.
    """
    func = RACERS[os.environ["RACE_MODE"]]
    keys, threads = int(os.environ["RACE_KEYS"]), int(os.environ["RACE_THREADS"])
    _shared_client().ping()  # configure the stack and connect before the start
    results: dict[int, list[Any]] = {n: [] for n in range(keys)}
    errors: list[str] = []
    start = threading.Barrier(threads + 1)

    def worker(seed: int) -> None:
        order = list(range(keys))
        random.Random(seed).shuffle(order)
        start.wait()
        for n in order:
            try:
                results[n].append(func(n))
            except Exception as exc:  # reported to the parent, which fails the test
                errors.append(repr(exc))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    start.wait()
    for thread in workers:
        thread.join()
    sys.stdout.write(json.dumps({"results": results, "errors": errors}) + "\n")


# -- helpers ----------------------------------------------------------------------------------


def _settings(url: str, **extra: object) -> dict[str, object]:
    return {
        "CACHE_TYPE": "RedisCacheAtomic",
        "CACHE_REDIS_URL": url,
        "CACHE_KEY_PREFIX": PREFIX,
        **extra,
    }


def _stack(url: str, **extra: object) -> CacheStack:
    stack = CacheStack()
    stack.configure(_settings(url, **extra))
    return stack


def _child_env(url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        **{k: str(v) for k, v in _settings(url).items()}, PYTHONPATH=root_pythonpath(), **extra
    )


def _spawn(entry: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", f"from tests.test_redis_atomic import {entry}; {entry}()"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def _children() -> Iterator[list[subprocess.Popen[str]]]:
    """Collect child processes; on the way out, wake and kill those alive, and reap all."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            with proc:  # closes the pipes and waits
                pass


def _fail_child(proc: subprocess.Popen[str], what: str) -> None:
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate(timeout=10)
    pytest.fail(f"child {proc.pid} {what}; stderr:\n{err}")


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if readable else ""
    if line != "ready\n":
        _fail_child(proc, f"was not ready after {timeout}s (read {line!r})")


def _finish(proc: subprocess.Popen[str], timeout: float = 40) -> Any:
    """Wait for a child; return the JSON it printed last."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def _race(
    server: RedisServer, mode: str, *, processes: int, threads: int, keys: int
) -> tuple[dict[int, list[Any]], dict[int, int], dict[int, Any]]:
    """Race processes x threads over ``keys`` keys of RACERS[mode].

    Returns what every call returned, the computations per key, and the stored values.
    """
    env = _child_env(
        server.url,
        RACE_MODE=mode,
        RACE_KEYS=str(keys),
        RACE_THREADS=str(threads),
        CACHE_ATOMIC_WAIT="15",
    )
    with _children() as procs:
        procs.extend(_spawn("race_main", env) for _ in range(processes))
        for proc in procs:
            _wait_ready(proc)
        for proc in procs:  # go: every thread of every process starts now
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [_finish(proc) for proc in procs]
    returned: dict[int, list[Any]] = {n: [] for n in range(keys)}
    for output in outputs:
        assert output["errors"] == []
        for n, values in output["results"].items():
            returned[int(n)].extend(values)
    backend = RedisCacheAtomic(url=server.url, key_prefix=PREFIX)
    with server.client() as raw:
        counts = {n: _computations(raw, f"{mode}:{n}") for n in range(keys)}
    stored = {n: backend.lookup(RACERS[mode].cache_key(n)) for n in range(keys)}
    return returned, counts, stored


def _command_counts(raw: redis.Redis) -> dict[str, int]:
    stats = raw.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if name.removeprefix("cmdstat_") not in INSPECTION
    }


def _park_commit(
    raw: redis.Redis, commit: Callable[[], Any], parked: int = 1
) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``commit`` in a thread while writes are paused; return once its write is parked.

    The caller has sent ``CLIENT PAUSE ... WRITE`` on ``raw``; ``parked`` is how many clients
    should then be blocked.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["returned"] = commit()
        except BaseException as exc:  # reported by the test
            outcome["raised"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while sum("b" in c["flags"] for c in raw.client_list()) < parked:
        assert time.monotonic() < deadline, "the commit never reached Redis"
        time.sleep(0.005)
    return thread, outcome


def _later_callers(url: str, key: str, mode: str, callers: int = 4) -> list[Any]:
    """``callers`` concurrent callers, each with a fresh backend, as cached_for drives them."""

    def call(i: int) -> Any:
        backend = RedisCacheAtomic(url=url, key_prefix=PREFIX, lock_timeout=1, lock_wait=5)
        computation = backend.start_computation(key, 60, GROUP, mode)
        if computation.value is not NO_VALUE:
            return computation.value
        return computation.commit(f"later-{i}")

    with ThreadPoolExecutor(callers) as pool:
        return list(pool.map(call, range(callers)))


def _tag(name: str) -> str:
    """The Redis Cluster hash tag of a key: between its first ``{`` and the next ``}``."""
    start = name.index("{")
    return name[start + 1 : name.index("}", start + 1)]


# -- at_most_once and at_least_once across processes ----------------------------------------


@pytest.mark.subprocess
def test_at_least_once_callers_agree_on_the_first_write(
    redis_server: RedisServer, redis_url: str
) -> None:
    keys = 20
    returned, counts, stored = _race(
        redis_server, "at_least_once", processes=4, threads=8, keys=keys
    )
    duplicates = sum(counts.values()) - keys
    print(
        f"figure: at_least_once duplicate computations = {duplicates} over {keys} keys,"
        f" max per key = {max(counts.values())}"
    )
    assert all(1 <= count <= 4 for count in counts.values()), counts  # one per process at most
    assert duplicates > 0, "the processes never raced: the test proves nothing"
    for n, values in returned.items():
        assert len(values) == 4 * 8
        assert all(value == stored[n] for value in values), f"key {n}: callers disagree"
    first_writes = {n: stored[n]["computation"] for n in stored}
    assert all(1 <= first_writes[n] <= counts[n] for n in stored)


def test_watch_retries_are_bounded(redis_server: RedisServer, redis_url: str) -> None:
    backend = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX, atomic_retries=2)
    full = backend._key(KEY)
    stop = threading.Event()

    def hammer() -> None:
        # Touches the key in one atomic step that leaves it absent: every WATCH of it that
        # spans a touch fails, and the read inside the transaction still finds no value.
        with redis_server.client() as client:
            touch = client.register_script("redis.call('INCR', KEYS[1]) redis.call('DEL', KEYS[1])")
            while not stop.is_set():
                touch(keys=[full])

    commits, attempts, exhausted, worst = 40, [], 0, 0.0
    with redis_server.client() as raw:
        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            time.sleep(0.05)
            raw.config_resetstat()
            before = _command_counts(raw)
            for i in range(commits):
                began = time.monotonic()
                returned = backend.start_computation(KEY, 60, GROUP, "at_least_once").commit(i)
                worst = max(worst, time.monotonic() - began)
                after = _command_counts(raw)
                # The hammer sends neither WATCH, EXEC nor SET: these deltas are this commit's.
                watches, execs, sets = (
                    after.get(name, 0) - before.get(name, 0) for name in ("watch", "exec", "set")
                )
                before = after
                attempts.append(watches)
                exhausted += execs == watches == 2 and sets == 0  # both EXECs aborted
                assert isinstance(returned, int)
                assert returned <= i  # its own value, or one stored before it
        finally:
            stop.set()
            thread.join(timeout=10)
    print(
        f"figure: {commits} watched commits under contention: {sum(attempts)} attempts,"
        f" {exhausted} commits exhausted atomic_retries=2, worst commit {worst * 1000:.1f} ms"
    )
    assert max(attempts) <= 2, "at most atomic_retries attempts per commit"
    assert exhausted > 0, "the contention never exhausted the retries: the test proves nothing"
    assert worst < 0.5


@pytest.mark.parametrize("retries", [1, 2])
def test_loser_of_the_last_watched_attempt_returns_the_winners_value(
    make_redis_server: Callable[[], RedisServer], retries: int
) -> None:
    server = make_redis_server()
    backend = RedisCacheAtomic(
        url=server.url, key_prefix=PREFIX, read_timeout=5, atomic_retries=retries
    )
    first = backend.start_computation(KEY, 60, GROUP, "at_least_once")
    second = backend.start_computation(KEY, 60, GROUP, "at_least_once")
    with server.client() as raw:
        # Both callers WATCH and read a miss; their EXECs wait for the pause to end, then run
        # in order: the first wins, the second's watched key has changed.
        raw.client_pause(10_000, all=False)
        try:
            one, one_outcome = _park_commit(raw, lambda: first.commit("first"))
            two, two_outcome = _park_commit(raw, lambda: second.commit("second"), parked=2)
        finally:
            raw.client_unpause()
        one.join(timeout=10)
        two.join(timeout=10)
    assert one_outcome == {"returned": "first"}
    assert backend.lookup(KEY) == "first"
    assert two_outcome == {"returned": "first"}, "a caller whose transaction fails re-reads"


# -- a hit takes no lock ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_hit_costs_one_round_trip_and_takes_no_lock(
    redis_server: RedisServer, redis_url: str, mode: Any
) -> None:
    stack = _stack(redis_url)
    calls = []

    @cached_for(minutes=5, atomic_writes=mode, stack=stack)
    def price(item: str) -> dict[str, float]:
        calls.append(item)
        return {item: 1.5}

    assert price("tea") == {"tea": 1.5}
    stack.local_cache.cache.clear()
    with redis_server.client() as raw:
        raw.config_resetstat()
        assert price("tea") == {"tea": 1.5}
        assert _command_counts(raw) == {"get": 1, "pttl": 1}  # one pipelined round trip
    assert calls == ["tea"]


# -- the lock: holders that die or stall, owners, waiters ------------------------------------


def test_waiter_gives_up_after_lock_wait(redis_server: RedisServer, redis_url: str) -> None:
    backend = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX, lock_wait=0.5)
    with redis_server.client() as raw:
        raw.set(backend._lock_key(KEY), "another-token", px=10_000)
        started = time.monotonic()
        with pytest.raises(AtomicWaitTimeout, match="CACHE_ATOMIC_WAIT") as raised:
            backend.start_computation(KEY, 60, GROUP, "at_most_once")
        waited = time.monotonic() - started
        assert raw.get(backend._lock_key(KEY)) == b"another-token"
    assert isinstance(raised.value, CacheError)
    assert 0.45 <= waited < 1.0


def test_decorated_waiter_gives_up_after_lock_wait(
    redis_server: RedisServer, redis_url: str
) -> None:
    stack = _stack(redis_url, CACHE_ATOMIC_WAIT=0.5)
    calls = []

    @cached_for(minutes=5, atomic_writes="at_most_once", stack=stack)
    def report(n: int) -> int:
        calls.append(n)
        return n

    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    with redis_server.client() as raw:
        raw.set(backend._lock_key(report.cache_key(1)), "another-token", px=10_000)
        with pytest.raises(AtomicWaitTimeout):
            report(1)
    assert calls == []


# -- lost replies and a missing server -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_commit_to_a_paused_server(make_redis_server: Callable[[], RedisServer], mode: str) -> None:
    """The server stops answering during the commit.

    at_most_once: the script reaches Redis, which runs it when it resumes: the caller's
    value is stored though it never saw the reply. at_least_once: the WATCH never answers,
    nothing is written. Either way the caller gets its own value at once, and later callers
    agree on what is stored.
    """
    server = make_redis_server()
    backend = RedisCacheAtomic(
        url=server.url,
        key_prefix=PREFIX,
        connect_timeout=0.3,
        read_timeout=0.3,
        retry_interval=0.2,
        lock_timeout=1,
    )
    computation = backend.start_computation(KEY, 60, GROUP, mode)
    server.pause()
    try:
        started = time.monotonic()
        returned = computation.commit("mine")
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert returned == "mine"
    # At most three requests (the commit, its one retry, the read-back), each given up after
    # the read timeout (0.3 s), plus scheduling slack on a loaded machine.
    assert elapsed < 3 * 0.3 + 0.5
    later = _later_callers(server.url, KEY, mode)
    assert len(set(later)) == 1, later
    assert RedisCacheAtomic(url=server.url, key_prefix=PREFIX).lookup(KEY) == later[0]
    if mode == "at_most_once":
        assert later[0] == "mine", "the script ran when the server resumed"


def test_client_killed_during_commit(make_redis_server: Callable[[], RedisServer]) -> None:
    """The commit's connection is killed while its script waits in Redis (at_most_once).

    The script never ran; the caller keeps its own value and the lock lives out its TTL, after
    which one later caller computes and every later caller agrees. (at_least_once under
    CLIENT KILL is scenario 7 of tests/reliability/test_atomic_writes.py.)
    """
    server = make_redis_server()
    backend = RedisCacheAtomic(url=server.url, key_prefix=PREFIX, read_timeout=5, lock_timeout=1)
    computation = backend.start_computation(KEY, 60, GROUP, "at_most_once")
    with server.client() as raw:
        raw.client_pause(10_000, all=False)
        try:
            thread, outcome = _park_commit(raw, lambda: computation.commit("mine"))
            raw.client_kill_filter(_type="normal", skipme=True)
        finally:
            raw.client_unpause()
        thread.join(timeout=10)
    assert outcome == {"returned": "mine"}, "a value, no exception"
    later = _later_callers(server.url, KEY, "at_most_once")
    assert len(set(later)) == 1, later
    stored = RedisCacheAtomic(url=server.url, key_prefix=PREFIX).lookup(KEY)
    assert stored == later[0]


def test_lost_commit_reply_returns_the_stored_value(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    holder = RedisCacheAtomic(url=server.url, key_prefix=PREFIX, read_timeout=5, lock_timeout=0.2)
    stale = holder.start_computation(KEY, 60, GROUP, "at_most_once")
    time.sleep(0.3)  # the holder's lock expires; another caller takes over and stores
    successor = RedisCacheAtomic(url=server.url, key_prefix=PREFIX, lock_timeout=5)
    assert successor.start_computation(KEY, 60, GROUP, "at_most_once").commit("theirs") == "theirs"
    with server.client() as raw:
        raw.client_pause(10_000, all=False)
        try:
            thread, outcome = _park_commit(raw, lambda: stale.commit("mine"))
            raw.client_kill_filter(_type="normal", skipme=True)
        finally:
            raw.client_unpause()
        thread.join(timeout=10)
    assert successor.lookup(KEY) == "theirs"
    assert outcome == {"returned": "theirs"}, "the caller re-reads and returns what is stored"


@pytest.mark.parametrize("mode", MODES)
def test_redis_down_still_returns_the_computed_value(
    make_redis_server: Callable[[], RedisServer], mode: Any
) -> None:
    server = make_redis_server()
    stack = _stack(server.url, CACHE_REDIS_CONNECT_TIMEOUT=0.3, CACHE_REDIS_READ_TIMEOUT=0.3)
    calls = []

    @cached_for(minutes=5, atomic_writes=mode, stack=stack)
    def report(n: int) -> dict[str, int]:
        calls.append(n)
        return {"n": n}

    assert report(1) == {"n": 1}
    server.kill()
    # The listener flushes the local tier once when it sees the channel lost: let it, so
    # that the flush cannot fall between report(2) and its second call below.
    seen = time.monotonic() + 5
    while stack.stats()["invalidation"]["state"] == "subscribed" and time.monotonic() < seen:
        time.sleep(0.01)
    started = time.monotonic()
    assert report(2) == {"n": 2}
    assert report(3) == {"n": 3}
    assert time.monotonic() - started < 1.0
    assert report(2) == {"n": 2}  # the local layer still has it
    assert calls == [1, 2, 3]


# -- keys fit Redis Cluster ------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["app_", "{tenant}:"], ids=["plain-prefix", "tagged-prefix"])
def test_value_lock_and_tracking_set_share_a_hash_tag(
    redis_server: RedisServer, redis_url: str, prefix: str
) -> None:
    stack = _stack(redis_url, CACHE_KEY_PREFIX=prefix)
    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    with redis_server.client() as raw:
        during: list[bytes] = []

        @cached_for(minutes=5, atomic_writes="at_most_once", stack=stack)
        def tagged(n: int) -> int:
            during.extend(raw.scan_iter())
            return n

        assert tagged(7) == 7
        after = set(raw.scan_iter())
    key = tagged.cache_key(7)
    value, lock = backend._key(key), backend._lock_key(key)
    tracking = backend._tracking_key(function_name(tagged.uncached))
    assert lock.encode() in during, "the lock exists while the function computes"
    assert {value.encode(), tracking.encode()} <= after
    assert len({_tag(value), _tag(lock), _tag(tracking)}) == 1, (value, lock, tracking)
    assert len({key_slot(name.encode()) for name in (value, lock, tracking)}) == 1
