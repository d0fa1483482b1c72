"""Scenarios 6-10: ``atomic_writes`` on RedisCacheAtomic under load and faults.

Real redis-servers and real worker processes: fresh interpreters that import this module
(``PYTHONPATH`` is the repository root), so the workers and the test share the decorated
functions below and therefore their keys. Workers talk to the test line by line: ``ready``,
then they wait for ``go``; each result is one JSON line.

* 6: at_most_once under 20 s of hot-key traffic: at most one computation per key per timeout
  window.
* 7: at_least_once while a killer client kills connections in the middle of their
  transactions: every caller gets a value, attempts stay within ``CACHE_ATOMIC_RETRIES``.
* 8: a lock holder SIGKILLed: a waiter computes within the lock's TTL + 1 s.
* 9: a lock holder SIGSTOPped past its TTL, then resumed: its write is rejected, it never
  releases the lock of its successor, and it returns the successor's value.
* 10: 32 concurrent misses on a 200 ms function: one computation.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import stratacache
from stratacache import CacheStack, cached_for
from stratacache.keys import KeyBuilder
from stratacache_plugins.rediscache import RedisCacheAtomic
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer

from .figures import percentile, record

PREFIX = "rel_atomic_"
# Commands the test's own inspection adds to a server's command counts.
INSPECTION = {"hello", "info", "client|setinfo", "client|list", "config|resetstat", "ping"}

# Scenario 6
HOT_PROCESSES, HOT_THREADS, HOT_KEYS, HOT_SECONDS = 4, 8, 200, 20
HOT_TIMEOUT = 2  # seconds an entry lives: every key expires and is recomputed ~9 times
HOT_COMPUTE = 0.01
# Redis stamps an entry's expiry from its millisecond clock, which may lag the true time by
# up to 1 ms: an entry written at t expires no earlier than t + timeout - 1 ms.
CLOCK_TOLERANCE = 0.001

# Scenario 7
KILL_PROCESSES, KILL_THREADS, KILL_KEYS = 2, 4, 250
KILL_RETRIES = 3
KILL_PROBABILITY = 0.6  # of each transaction found parked
KILL_ROUNDS = 4  # kill rounds per pause, so one caller can be killed several times running

# Scenarios 8 and 9
HOLDER_LOCK_TIMEOUT = 2.0
STALE_LOCK_TIMEOUT = 1.0

# Scenario 10
BURST_PROCESSES, BURST_THREADS, BURST_ROUNDS = 2, 16, 10
BURST_COMPUTE = 0.2


# -- what the workers run ------------------------------------------------------------------

_say_lock = threading.Lock()


def _say(line: str) -> None:
    """Write one line to the test."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _hear() -> str:
    """Read one line from the test."""
    return sys.stdin.readline().strip()


def _release_together(
    threads: list[threading.Thread], start: threading.Barrier, announce: str | None = None
) -> None:
    """Start ``threads`` (they wait on ``start``), say ready, release them all at the test's
    word (saying ``announce`` then, if given), and wait for them to finish."""
    for thread in threads:
        thread.start()
    _say("ready")
    _hear()
    start.wait()
    if announce is not None:
        _say(announce)
    for thread in threads:
        thread.join()


@functools.cache
def _recorder() -> redis.Redis:
    """A plain client on the shared layer's server, for the workers' own records."""
    return redis.Redis.from_url(os.environ["CACHE_REDIS_URL"])


class _WarningCounter(logging.Handler):
    """Keeps the WARNING records of the Redis backends (outages, unreadable entries)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _connect() -> _WarningCounter:
    """Configure the stack from the environment and connect, before the start."""
    warnings = _WarningCounter()
    logging.getLogger("stratacache_plugins").addHandler(warnings)
    backend = stratacache.cache.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    backend.client.ping()
    _recorder().ping()
    return warnings


@cached_for(seconds=HOT_TIMEOUT, atomic_writes="at_most_once")
def hot_value(n: int) -> dict[str, Any]:
    """Scenario 6: records every computation (start, end, pid) in a list per key."""
    started = time.time()
    time.sleep(HOT_COMPUTE)
    ended = time.time()
    _recorder().rpush(f"computations:hot:{n}", json.dumps([started, ended, os.getpid()]))
    return {"n": n, "pid": os.getpid(), "started": started}


def hot_keys_main() -> None:
    """Scenario 6 worker: HOT_THREADS threads call hot_value on random keys HOT_SECONDS."""
    warnings = _connect()
    calls = [0] * HOT_THREADS
    errors: list[str] = []
    start = threading.Barrier(HOT_THREADS + 1)

    def worker(i: int) -> None:
        rng = random.Random(f"{os.getpid()}-{i}")
        start.wait()
        deadline = time.monotonic() + HOT_SECONDS
        while time.monotonic() < deadline:
            n = rng.randrange(HOT_KEYS)
            try:
                value = hot_value(n)
                if value["n"] != n:
                    errors.append(f"key {n} returned {value!r}")
            except Exception as exc:  # reported to the test, which fails
                errors.append(repr(exc))
            calls[i] += 1

    _release_together(
        [threading.Thread(target=worker, args=(i,)) for i in range(HOT_THREADS)], start
    )
    _say(json.dumps({"calls": sum(calls), "errors": errors[:10], "warnings": warnings.messages}))


_computations: list[tuple[str, int]] = []  # scenario 7: (caller, key), in this process


def watched_value(n: int) -> dict[str, Any]:
    """Scenario 7: each caller thread decorates this (at_least_once) with its own stack."""
    caller = threading.current_thread().name
    _computations.append((caller, n))
    time.sleep(0.002)  # widens the races between callers
    return {"n": n, "caller": caller, "nonce": secrets.token_hex(4)}


def watched_main() -> None:
    """Scenario 7 worker: KILL_THREADS callers, each with its own stack and named connections.

    A caller's connections are named after it (``CLIENT SETNAME``), so the test can tell its
    attempts apart on the server. Each caller calls every key once, in its own random order.
    """
    process = os.environ["WORKER"]
    warnings = _WarningCounter()
    logging.getLogger("stratacache_plugins").addHandler(warnings)
    results: list[tuple[str, int, Any]] = []
    errors: list[str] = []
    start = threading.Barrier(KILL_THREADS + 1)

    def caller() -> None:
        name = threading.current_thread().name
        stack = CacheStack()
        stack.configure(CACHE_OPTIONS={"client_name": name})
        cached = cached_for(minutes=5, atomic_writes="at_least_once", stack=stack)(watched_value)
        assert isinstance(stack.shared_cache.cache, RedisCacheAtomic)
        stack.shared_cache.cache.client.ping()
        order = list(range(KILL_KEYS))
        random.Random(name).shuffle(order)
        start.wait()
        for n in order:
            try:
                results.append((name, n, cached(n)))
            except Exception as exc:  # reported to the test, which fails
                errors.append(f"{name} key {n}: {exc!r}")

    threads = [
        threading.Thread(target=caller, name=f"caller-{process}-{i}") for i in range(KILL_THREADS)
    ]
    _release_together(threads, start)
    _say(
        json.dumps(
            {
                "results": results,
                "computations": _computations,
                "errors": errors,
                "warnings": warnings.messages,
            }
        )
    )


@cached_for(minutes=5, atomic_writes="at_most_once")
def held_value(n: int) -> dict[str, Any]:
    """Scenario 8: the holder blocks in here; a waiter that takes over returns at once."""
    started = time.time()
    _recorder().rpush(f"computations:held:{n}", json.dumps([started, os.getpid()]))
    if os.environ.get("ROLE") == "holder":
        _say("computing")
        time.sleep(120)  # until SIGKILL
    return {"n": n, "pid": os.getpid(), "started": started}


def holder_main() -> None:
    """Scenario 8 holder: takes the lock of held_value(0) and holds it until killed."""
    _connect()
    held_value(0)


def held_waiters_main() -> None:
    """Scenario 8 waiter: 4 threads call held_value(0) on ``go``; prints what they got."""
    warnings = _connect()
    returned: list[Any] = []
    start = threading.Barrier(5)

    def waiter() -> None:
        start.wait()
        began = time.time()
        try:
            returned.append({"value": held_value(0), "began": began, "ended": time.time()})
        except Exception as exc:  # reported to the test, which fails
            returned.append({"error": repr(exc)})

    _release_together([threading.Thread(target=waiter) for _ in range(4)], start, "calling")
    _say(json.dumps({"returned": returned, "warnings": warnings.messages}))


_role = "successor"  # scenario 9: the test process is the successor; the worker the holder
_stale_fails = False  # the holder's computation raises (after it resumes) when True
_successor_may_return = threading.Event()


@cached_for(minutes=5, atomic_writes="at_most_once")
def stale_value(n: int) -> dict[str, Any]:
    """Scenario 9: the holder blocks until the test releases it; so does the successor."""
    if _role == "holder":
        _say(f"computing {n}")
        _recorder().blpop([f"release:{n}"])  # the test sends this, then SIGCONT
        if _stale_fails:
            raise RuntimeError("the stale holder's computation failed")
    else:
        assert _successor_may_return.wait(timeout=30)
    return {"n": n, "by": _role, "pid": os.getpid()}


def stale_holder_main() -> None:
    """Scenario 9 holder: for each ``go N OUTCOME`` line, call stale_value(N)."""
    global _role, _stale_fails
    _role = "holder"
    _connect()
    _say("ready")
    while (line := _hear()) != "exit":
        _, n, outcome = line.split()
        _stale_fails = outcome == "raises"
        try:
            _say(json.dumps({"returned": stale_value(int(n))}))
        except RuntimeError as exc:
            _say(json.dumps({"raised": str(exc)}))


_computing = threading.local()


@cached_for(minutes=5, atomic_writes="at_most_once")
def slow_value(n: int) -> dict[str, Any]:
    """Scenario 10: a 200 ms computation; the thread that runs it is marked."""
    _computing.yes = True
    _recorder().incr(f"computations:slow:{n}")
    time.sleep(BURST_COMPUTE)
    return {"n": n, "pid": os.getpid(), "nonce": secrets.token_hex(4)}


def burst_main() -> None:
    """Scenario 10 worker: on each ``go N``, BURST_THREADS threads call slow_value(N) at once."""
    _connect()
    rounds: list[list[Any]] = [[None] * BURST_THREADS for _ in range(BURST_ROUNDS)]
    start = threading.Barrier(BURST_THREADS + 1)
    done = threading.Barrier(BURST_THREADS + 1)

    def caller(i: int) -> None:
        for r in range(BURST_ROUNDS):
            start.wait()
            began = time.perf_counter()
            try:
                value: Any = slow_value(r)
            except Exception as exc:  # reported to the test, which fails
                value = repr(exc)
            latency = time.perf_counter() - began
            computed = getattr(_computing, "yes", False)
            _computing.yes = False
            rounds[r][i] = {"value": value, "latency": latency, "computed": computed}
            done.wait()

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(BURST_THREADS)]
    for thread in threads:
        thread.start()
    _say("ready")
    for r in range(BURST_ROUNDS):
        _hear()
        start.wait()
        done.wait()
        _say(json.dumps(rounds[r]))


# -- driving the workers -------------------------------------------------------------------


class _Worker:
    """A worker process running one ``*_main`` function of ``module``, driven line by line.

    A thread reads its output lines into a queue (no blocking reads on the pipe); its stderr
    goes to a file, shown when the worker fails.
    """

    def __init__(self, entry: str, env: dict[str, str], log: Path, module: str = __name__) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"from {module} import {entry}; {entry}()"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, timeout: float = 60) -> str:
        """The next line of the worker; fail the test if none comes within ``timeout``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.fail(f"said nothing for {timeout}s")
        if line is None:
            self.fail(f"exited with {self.proc.wait()}")
        return line

    def result(self, timeout: float = 60) -> Any:
        return json.loads(self.expect(timeout))

    def fail(self, what: str) -> Any:
        self.close()
        pytest.fail(f"worker {self.proc.pid} {what}; stderr:\n{self.log.read_text()[-4000:]}")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def close(self) -> None:
        """Wake and kill the worker if it runs, reap it and close its pipes."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., _Worker]]:
    """Start workers: ``workers(entry, url, **env)``; all are killed and reaped at the end."""
    started: list[_Worker] = []

    def start(entry: str, url: str, **extra: Any) -> _Worker:
        env = clean_env(
            **{k: str(v) for k, v in _settings(url).items()},
            PYTHONPATH=root_pythonpath(),
            **{k: str(v) for k, v in extra.items()},
        )
        worker = _Worker(entry, env, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def _settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "RedisCacheAtomic",
        "CACHE_REDIS_URL": url,
        "CACHE_KEY_PREFIX": PREFIX,
        # Generous: a loaded 2-core machine must not pass for an outage here (an outage
        # degrades the coordination, as documented, which is not what these scenarios test).
        "CACHE_REDIS_READ_TIMEOUT": 5,
        **extra,
    }


def _all_ready(started: list[_Worker]) -> None:
    for worker in started:
        assert worker.expect() == "ready"


def _go(started: list[_Worker], line: str = "go") -> None:
    for worker in started:
        worker.send(line)


def _command_counts(raw: redis.Redis) -> Counter[str]:
    stats = raw.info("commandstats")
    return Counter(
        {
            name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in stats.items()
            if name.removeprefix("cmdstat_") not in INSPECTION
        }
    )


def _scripts(raw: redis.Redis, counts: Counter[str] | None = None) -> int:
    """Scripts run since the last ``CONFIG RESETSTAT`` (from ``counts`` if given)."""
    counts = _command_counts(raw) if counts is None else counts
    return counts["eval"] + counts["evalsha"]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout}s")
        time.sleep(0.005)


def _in_thread(func: Callable[..., Any], *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Call ``func(*args)`` in a new thread; the dict gets its ``value`` when it returns."""
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(value=func(*args)))
    thread.start()
    return thread, outcome


# -- 6. at_most_once: one computation per key per timeout window ---------------------------


def _window_check(
    computations: list[tuple[float, float]], timeout: float
) -> tuple[int, int, float]:
    """Check one key's computations, each (started, ended), against its timeout windows.

    A computation's window opens when it starts and closes ``timeout`` seconds after it
    returned, less CLOCK_TOLERANCE: its entry is written after it returns, so it cannot expire
    sooner, and until then every caller must get that value. Returns the violations (the
    computations that started inside an earlier one's window), the most computations that
    started within one window, and the least slack: how long after the earliest possible
    expiry of the previous entry a computation started (negative = a violation).
    """
    ordered = sorted(computations)
    violations, most, slack = 0, 1 if ordered else 0, float("inf")
    closes = float("-inf")
    for i, (started, ended) in enumerate(ordered):
        if i:
            slack = min(slack, started - closes)
            violations += started < closes
        closes = max(closes, ended + timeout - CLOCK_TOLERANCE)
        window_end = ended + timeout - CLOCK_TOLERANCE
        most = max(most, sum(1 for s, _ in ordered[i:] if s < window_end))
    return violations, most, slack


@pytest.mark.subprocess
def test_at_most_once_under_hot_key_load(
    redis_server: RedisServer, redis_url: str, workers: Callable[..., _Worker]
) -> None:
    """Scenario 6."""
    started = [
        workers("hot_keys_main", redis_url, LOCALCACHE_TYPE="NullCache")
        for _ in range(HOT_PROCESSES)
    ]
    _all_ready(started)
    _go(started)
    outputs = [worker.result(timeout=HOT_SECONDS + 60) for worker in started]
    with redis_server.client() as raw:
        per_key = {
            n: [json.loads(item) for item in raw.lrange(f"computations:hot:{n}", 0, -1)]
            for n in range(HOT_KEYS)
        }
    violations, most, slack = 0, 0, float("inf")
    for records in per_key.values():
        v, m, s = _window_check([(start, end) for start, end, _ in records], HOT_TIMEOUT)
        violations, most, slack = violations + v, max(most, m), min(slack, s)
    counts = [len(records) for records in per_key.values()]
    calls = sum(output["calls"] for output in outputs)
    pids = {pid for records in per_key.values() for _, _, pid in records}
    record(
        6,
        "at_most_once under hot-key load",
        requirement=(
            f"{HOT_PROCESSES} processes x {HOT_THREADS} threads call {HOT_KEYS} keys at random"
            f" for {HOT_SECONDS} s, entries living {HOT_TIMEOUT} s, no local layer. A key's"
            " timeout window opens when a computation starts and closes the timeout after it"
            " returned, less 1 ms for Redis's millisecond clock (its entry cannot expire"
            " sooner); no other computation of the key may start inside it: max count 1,"
            " violations 0, every call a value"
        ),
        figures={
            "calls": calls,
            "computations": sum(counts),
            "computations per key (min-max)": f"{min(counts)}-{max(counts)}",
            "processes that computed": len(pids),
            "max count": most,
            "violations": violations,
            "least slack after expiry (ms)": round(slack * 1000, 2),
            "errors": sum(len(output["errors"]) for output in outputs),
        },
    )
    for output in outputs:
        assert output["errors"] == []
        assert output["warnings"] == [], "no outage or unreadable entry during the run"
    assert min(counts) >= HOT_SECONDS // (HOT_TIMEOUT * 2), "every key expired and was recomputed"
    assert violations == 0
    assert most == 1


# -- 7. at_least_once with CLIENT KILL during EXEC -----------------------------------------


class _Monitor:
    """Counts each caller's WATCH per key, from the server's MONITOR stream.

    A caller's connections are named after it; ``CLIENT SETNAME`` tells whose an address is.
    """

    def __init__(self, server: RedisServer) -> None:
        # No read timeout: the stream may stay quiet for seconds (writes paused, callers
        # waiting), and redis-py's 5 s default ended the thread, and the count, under load.
        # stop() ends it with an ECHO, and joins it for 30 s at most.
        self._client = server.client(socket_timeout=None)
        self._monitor = self._client.monitor()
        self._connection = self._monitor.__enter__()
        self.watches: Counter[tuple[str, str]] = Counter()
        self._names: dict[str, str] = {}
        self._stop = f"stop-{secrets.token_hex(4)}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            line = self._connection.next_command()
            address = f"{line['client_address']}:{line['client_port']}"
            command, _, rest = line["command"].partition(" ")
            if command == "WATCH":
                self.watches[self._names.get(address, address), rest] += 1
            elif command == "CLIENT" and rest.startswith("SETNAME "):
                self._names[address] = rest.removeprefix("SETNAME ")
            elif command == "ECHO" and rest == self._stop:
                return

    def stop(self) -> None:
        with contextlib.closing(self._client) as client:
            client.echo(self._stop)
            self._thread.join(timeout=30)
        self._monitor.__exit__(None, None, None)


class _Killer:
    """Kills connections in the middle of their transactions, as a failing network would.

    Over and over: ``CLIENT PAUSE WRITE`` (reads go on, a transaction's queued write waits
    before its EXEC runs), then in a few rounds ``CLIENT KILL`` each parked transaction with
    probability KILL_PROBABILITY, then ``CLIENT UNPAUSE``. A killed caller sees its connection
    die after sending EXEC, without a reply.
    """

    def __init__(self, server: RedisServer) -> None:
        self._client = server.client()
        self._rng = random.Random(7)
        self._stop = threading.Event()
        self.kills = 0
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        raw = self._client
        while not self._stop.is_set():
            raw.client_pause(2000, all=False)
            try:
                for _ in range(KILL_ROUNDS):
                    time.sleep(0.01)
                    for client in raw.client_list():
                        parked = "x" in client["flags"] and "b" in client["flags"]
                        if parked and self._rng.random() < KILL_PROBABILITY:
                            self.kills += int(raw.client_kill_filter(_id=client["id"]))
            finally:
                raw.client_unpause()
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()


@pytest.mark.subprocess
def test_at_least_once_with_connections_killed_during_exec(
    make_redis_server: Callable[[], RedisServer], workers: Callable[..., _Worker]
) -> None:
    """Scenario 7."""
    server = make_redis_server()
    monitor = _Monitor(server)  # before the callers connect, to see each connection named
    started = [
        workers("watched_main", server.url, WORKER=i, CACHE_ATOMIC_RETRIES=KILL_RETRIES)
        for i in range(KILL_PROCESSES)
    ]
    _all_ready(started)
    killer = _Killer(server)
    try:
        _go(started)
        outputs = [worker.result(timeout=120) for worker in started]
    finally:
        killer.stop()
        monitor.stop()
    backend = RedisCacheAtomic(url=server.url, key_prefix=PREFIX)
    key_of = {n: backend._key(watched_value_key(n)) for n in range(KILL_KEYS)}
    stored = {n: backend.lookup(watched_value_key(n)) for n in range(KILL_KEYS)}
    results = [tuple(r) for output in outputs for r in output["results"]]
    errors = [e for output in outputs for e in output["errors"]]
    computations = sum(len(output["computations"]) for output in outputs)
    calls = KILL_PROCESSES * KILL_THREADS * KILL_KEYS
    attempts = {(caller, n): monitor.watches[caller, key_of[n]] for caller, n, _ in results}
    exhausted = sum(a == KILL_RETRIES for a in attempts.values())
    committed = sum(a > 0 for a in attempts.values())
    # A caller whose last attempt was not killed returns what is stored: its own value if
    # its write won, the winner's otherwise. Only one that used every attempt may return its
    # own value when that is not what is stored (nothing was, when it looked).
    disagreeing = [
        (caller, n)
        for caller, n, value in results
        if value != stored[n]
        and not (value["caller"] == caller and attempts[caller, n] == KILL_RETRIES)
    ]
    duplicates = computations - KILL_KEYS
    record(
        7,
        "at_least_once with CLIENT KILL during EXEC",
        requirement=(
            f"{KILL_PROCESSES} processes x {KILL_THREADS} callers, each with its own"
            f" connections, call {KILL_KEYS} keys once each while a killer client parks writes"
            f" (CLIENT PAUSE WRITE) and kills {KILL_PROBABILITY:.0%} of the parked"
            f" transactions, up to {KILL_ROUNDS} times per pause: every call returns a value,"
            f" no call makes more than CACHE_ATOMIC_RETRIES={KILL_RETRIES} attempts (WATCHes"
            " counted on the server), and every call returns the stored value unless it used"
            " every attempt"
        ),
        figures={
            "calls": calls,
            "calls that computed": committed,
            "connections killed": killer.kills,
            "kills per 1,000 calls": round(killer.kills * 1000 / calls, 1),
            "duplicate computations per 1,000 calls": round(duplicates * 1000 / calls, 1),
            "max attempts": max(attempts.values()),
            "calls that used every attempt": exhausted,
            "errors": len(errors),
        },
        table=[
            {"WATCH attempts": k, "calls": n} for k, n in sorted(Counter(attempts.values()).items())
        ],
    )
    assert errors == []
    assert [w for output in outputs for w in output["warnings"]] == [], "no outage logged"
    assert all(caller.startswith("caller-") for caller, _ in monitor.watches), "named"
    assert len(results) == calls, "every caller got a value"
    assert all(value["n"] == n for _, n, value in results)
    assert killer.kills > 0, "no transaction was killed: the test proves nothing"
    assert max(attempts.values()) <= KILL_RETRIES
    assert exhausted > 0, "no caller used every attempt: the bound was never tested"
    assert disagreeing == []
    assert all(value is not None for value in stored.values())


def watched_value_key(n: int) -> str:
    """The key of ``watched_value(n)``, as each caller's decorator builds it."""
    return KeyBuilder(watched_value)((n,), {})


# -- 8. a lock holder SIGKILLed -----------------------------------------------------------


@pytest.mark.subprocess
def test_holder_killed_waiter_takes_over_within_ttl(
    redis_server: RedisServer, redis_url: str, workers: Callable[..., _Worker]
) -> None:
    """Scenario 8."""
    extra = {"CACHE_ATOMIC_LOCK_TIMEOUT": HOLDER_LOCK_TIMEOUT, "CACHE_ATOMIC_WAIT": 10}
    waiters = [workers("held_waiters_main", redis_url, **extra) for _ in range(2)]
    holder = workers("holder_main", redis_url, ROLE="holder", **extra)
    _all_ready(waiters)
    assert holder.expect() == "computing"
    lock = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX)._lock_key(held_value.cache_key(0))
    with redis_server.client() as raw:
        assert raw.pttl(lock) > 0, "the holder holds the lock"
        _go(waiters)
        for waiter in waiters:
            assert waiter.expect() == "calling"
        time.sleep(0.05)  # the waiters poll the lock
        lock_left = raw.pttl(lock) / 1000
        holder.proc.kill()
        killed = time.time()
        holder.proc.wait(timeout=10)
        outputs = [waiter.result(timeout=30) for waiter in waiters]
        computations = [json.loads(item) for item in raw.lrange("computations:held:0", 0, -1)]
    (_, holder_pid), (took_over, taker_pid) = computations[0], computations[-1]
    returned = [item for output in outputs for item in output["returned"]]
    recovered = took_over - killed
    record(
        8,
        "lock holder SIGKILLed",
        requirement=(
            f"the holder of an at_most_once lock (TTL {HOLDER_LOCK_TIMEOUT:g} s) is SIGKILLed"
            " while 2 processes x 4 threads wait: one waiter computes within the TTL + 1 s of"
            " the kill, once, and every waiter returns its value"
        ),
        figures={
            "lock TTL (s)": HOLDER_LOCK_TIMEOUT,
            "lock left at the kill (s)": round(lock_left, 3),
            "time to recover (s)": round(recovered, 3),
            "after the lock expired (ms)": round((recovered - lock_left) * 1000, 1),
            "last waiter served after the kill (s)": round(
                max(item.get("ended", 0) for item in returned) - killed, 3
            ),
            "computations after the kill": len(computations) - 1,
        },
    )
    assert holder_pid == holder.proc.pid
    assert [output["warnings"] for output in outputs] == [[], []]
    assert len(computations) == 2, "one waiter took over, once"
    assert taker_pid in {waiter.proc.pid for waiter in waiters}
    assert recovered <= HOLDER_LOCK_TIMEOUT + 1.0
    assert [item.get("value", item) for item in returned] == [
        {"n": 0, "pid": taker_pid, "started": took_over}
    ] * 8


# -- 9. a lock holder SIGSTOPped past its TTL, then resumed --------------------------------


@pytest.mark.subprocess
def test_holder_paused_past_its_ttl_is_rejected(
    make_redis_server: Callable[[], RedisServer], workers: Callable[..., _Worker]
) -> None:
    """Scenario 9.

    Each round, the holder takes the lock and computes; it is SIGSTOPped, its lock expires,
    and this process takes over as the successor. The holder is resumed when the successor
    has stored its value ("stored"), or while the successor still holds the lock, with the
    holder then committing ("commits": it waits for the successor's value, the one every caller
    gets) or its computation raising ("raises", so it aborts).
    """
    server = make_redis_server()
    extra = {"CACHE_ATOMIC_LOCK_TIMEOUT": STALE_LOCK_TIMEOUT, "CACHE_ATOMIC_WAIT": 10}
    holder = workers("stale_holder_main", server.url, **extra)
    # The successor's own lock outlives the test's checks.
    stratacache.cache.configure(_settings(server.url, CACHE_ATOMIC_WAIT=10))
    backend = stratacache.cache.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    assert holder.expect() == "ready"
    rows: list[dict[str, Any]] = []
    with server.client() as raw, contextlib.ExitStack() as cleanup:
        cleanup.callback(_successor_may_return.set)  # never leave a successor blocked
        for n, outcome in enumerate(["stored", "commits", "raises"]):
            key = stale_value.cache_key(n)
            lock = backend._lock_key(key)
            _successor_may_return.clear()
            holder.send(f"go {n} {outcome}")
            assert holder.expect() == f"computing {n}"
            holder.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            _wait_for(lambda lock=lock: not raw.exists(lock), "lock expiry", 10)
            thread, successor = _in_thread(stale_value, n)
            if outcome == "stored":
                _successor_may_return.set()
                thread.join(timeout=30)
            else:
                _wait_for(lambda lock=lock: raw.exists(lock), "the successor's lock", 10)
            token, before = raw.get(lock), raw.get(backend._key(key))
            raw.config_resetstat()
            raw.rpush(f"release:{n}", 1)
            holder.signal(signal.SIGCONT)
            paused = time.monotonic() - stopped
            if outcome == "commits":  # the holder waits for the successor's value
                _wait_for(lambda: _scripts(raw) >= 2, "the holder's commit attempts", 10)
            else:
                answer = holder.result()
            counts = _command_counts(raw)
            after, token_after = raw.get(backend._key(key)), raw.get(lock)
            _successor_may_return.set()
            if outcome == "commits":
                answer = holder.result()
            thread.join(timeout=30)
            rows.append(
                {
                    "holder resumed": "after the successor stored"
                    if outcome == "stored"
                    else f"while the successor computes; the holder {outcome}",
                    "paused (s)": round(paused, 2),
                    "holder's commit scripts": _scripts(raw, counts),
                    "stale writes accepted": counts["set"] + int(after != before),
                    "lock released by a non-owner": counts["del"] + int(token_after != token),
                    "holder got": answer.get("returned", {}).get("by", "its exception"),
                    "stored": backend.lookup(key)["by"],
                }
            )
            expected_answer = {
                "stored": {"returned": successor.get("value")},
                "commits": {"returned": successor.get("value")},
                "raises": {"raised": "the stale holder's computation failed"},
            }[outcome]
            assert answer == expected_answer, outcome
            assert successor["value"] == {"n": n, "by": "successor", "pid": os.getpid()}
    holder.send("exit")
    stale = sum(row["stale writes accepted"] for row in rows)
    foreign = sum(row["lock released by a non-owner"] for row in rows)
    record(
        9,
        "lock holder SIGSTOPped past its TTL",
        requirement=(
            f"a holder SIGSTOPped until its lock (TTL {STALE_LOCK_TIMEOUT:g} s) expired and a"
            " successor took over, then resumed: no SET runs and the stored value does not"
            " change when it commits (stale writes accepted 0); no DEL runs and the successor's"
            " lock keeps its token when it commits or aborts (lock released by a non-owner 0);"
            " a holder that commits waits for the successor's value and returns it"
        ),
        figures={
            "rounds": len(rows),
            "stale writes accepted": stale,
            "lock released by a non-owner": foreign,
        },
        table=rows,
    )
    assert all(row["holder's commit scripts"] >= 1 for row in rows), "the holder tried to write"
    assert [row["holder got"] for row in rows] == ["successor", "successor", "its exception"]
    assert all(row["stored"] == "successor" for row in rows)
    assert stale == 0
    assert foreign == 0


# -- 10. 32 concurrent misses on a 200 ms function ----------------------------------------


@pytest.mark.subprocess
def test_concurrent_misses_compute_once(
    redis_server: RedisServer, redis_url: str, workers: Callable[..., _Worker]
) -> None:
    """Scenario 10."""
    started = [workers("burst_main", redis_url) for _ in range(BURST_PROCESSES)]
    _all_ready(started)
    waits: list[float] = []
    computing: list[float] = []
    with redis_server.client() as raw:
        for r in range(BURST_ROUNDS):
            _go(started, f"go {r}")
            calls = [call for worker in started for call in worker.result()]
            values = [call["value"] for call in calls]
            assert int(raw.get(f"computations:slow:{r}") or 0) == 1, f"round {r}: one computation"
            assert all(value == values[0] for value in values), f"round {r}: callers disagree"
            assert sum(1 for call in calls if call["computed"]) == 1
            computing += [call["latency"] for call in calls if call["computed"]]
            waits += [call["latency"] for call in calls if not call["computed"]]
    callers = BURST_PROCESSES * BURST_THREADS
    record(
        10,
        "32 concurrent misses on a 200 ms function",
        requirement=(
            f"{BURST_PROCESSES} processes x {BURST_THREADS} threads miss the same key at once"
            f" on a {BURST_COMPUTE * 1000:.0f} ms at_most_once function, {BURST_ROUNDS}"
            " rounds: one computation per round, every caller gets its value"
        ),
        figures={
            "callers per round": callers,
            "rounds": BURST_ROUNDS,
            "computations per round": 1,
            "computing caller p50 (ms)": round(percentile(computing, 0.5) * 1000, 1),
            "waiter p50 (ms)": round(percentile(waits, 0.5) * 1000, 1),
            "waiter p99 (ms)": round(percentile(waits, 0.99) * 1000, 1),
            "waiter max (ms)": round(max(waits) * 1000, 1),
        },
    )
    assert len(waits) == BURST_ROUNDS * (callers - 1)
