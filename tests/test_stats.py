"""Statistics: every counter of ``cache.stats()``, per layer and per function, on real backends."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import stratacache
from stratacache import CacheStack, cached_for
from stratacache.stats import FunctionCounts, LayerCounts
from stratacache_plugins.rediscache import AtomicWaitTimeout, RedisCacheAtomic, RedisCacheError

from .redis_server import RedisServer

ZERO_LAYER: LayerCounts = {
    "hits": 0,
    "misses": 0,
    "sets": 0,
    "deletes": 0,
    "errors": 0,
    "deserialization_failures": 0,
    "lock_waits": 0,
    "recovery_queued": 0,
    "recovery_replayed": 0,
    "recovery_dropped": 0,
    "recovery_rechecked": 0,
}
ZERO_FUNCTION: FunctionCounts = {
    "local_hits": 0,
    "shared_hits": 0,
    "misses": 0,
    "sets": 0,
    "deletes": 0,
    "errors": 0,
    "computations": 0,
    "compute_errors": 0,
    "compute_seconds": 0.0,
    "lock_waits": 0,
    "refreshes": 0,
    "refreshes_dropped": 0,
    "stale_served": 0,
    "fail_safe_served": 0,
    "soft_timeouts": 0,
    "hard_timeouts": 0,
    "bypasses": 0,
    "not_cached": 0,
    "manual_refreshes": 0,
}


def layer(stack: CacheStack, name: str) -> dict[str, int]:
    """The counters of one layer that are not zero."""
    counts: dict[str, int] = dict(stack.stats()["layers"][name])  # type: ignore[arg-type]
    return {k: v for k, v in counts.items() if v}


def function(stack: CacheStack, func: Callable[..., Any]) -> dict[str, Any]:
    """The counters of one decorated function that are not zero (compute time left out)."""
    name = f"{func.__module__}.{func.__qualname__}"
    counts: dict[str, Any] = dict(stack.stats()["functions"][name])
    return {k: v for k, v in counts.items() if v and k != "compute_seconds"}


def _refuse() -> None:
    raise ValueError("this class was renamed since the entry was written")


class Unreadable:
    """Pickles fine, cannot be unpickled: an entry written by an older version of the code."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_refuse, ())


def make_stack(config: dict[str, Any]) -> CacheStack:
    stack = CacheStack()
    stack.configure(config)
    return stack


# -- the shape ----------------------------------------------------------------------------------


def test_a_new_stack_reports_every_layer_at_zero_without_configuring() -> None:
    stack = CacheStack()
    assert stack.stats() == {
        "enabled": True,
        "layers": dict.fromkeys(("local", "local_no_serializer", "shared"), ZERO_LAYER),
        "functions": {},
    }
    assert stack._state is None, "reading statistics does not configure the stack"
    assert stratacache.cache.stats()["layers"].keys() == stack.stats()["layers"].keys()


def test_stats_is_a_plain_json_dict(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    snapshot = stack.stats()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert set(snapshot["functions"]) == {f"{__name__}.{f.__qualname__}"}
    assert set(snapshot["functions"][f"{__name__}.{f.__qualname__}"]) == set(ZERO_FUNCTION)


# -- the decorator, through SimpleCache layers ----------------------------------------------------


def test_decorator_counts_hits_misses_sets_and_compute_time(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def slow(x: int) -> int:
        time.sleep(0.02)
        return x

    slow(1)  # computed: a miss in both layers, written to both
    slow(1)  # a local hit
    slow(1)
    stack.local_cache.cache.clear()
    slow(1)  # a shared hit, copied into the local layer
    assert function(stack, slow) == {
        "local_hits": 2,
        "shared_hits": 1,
        "misses": 1,
        "sets": 3,
        "computations": 1,
    }
    counts = stack.stats()["functions"][f"{__name__}.{slow.__qualname__}"]
    assert 0.02 <= counts["compute_seconds"] < 1
    assert layer(stack, "local") == {"hits": 2, "misses": 2, "sets": 2}
    assert layer(stack, "shared") == {"hits": 1, "misses": 1, "sets": 1}
    assert layer(stack, "local_no_serializer") == {}


def test_by_reference_functions_count_in_their_own_layer(stack: CacheStack) -> None:
    @cached_for(minutes=1, local_ram_cache_only=True, no_serialization=True, stack=stack)
    def build(x: int) -> list[int]:
        return [x]

    build(1)
    build(1)
    build(1)
    assert function(stack, build) == {"local_hits": 2, "misses": 1, "sets": 1, "computations": 1}
    assert layer(stack, "local_no_serializer") == {"hits": 2, "misses": 1, "sets": 1}
    assert layer(stack, "local") == {}
    assert layer(stack, "shared") == {}, "local_ram_cache_only never touches the shared layer"


def test_invalidate_and_clear_cache_count_deletes(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    for x in range(3):
        f(x)
    assert f.invalidate(0) is True  # local and shared
    assert f.invalidate(0) is False
    assert f.clear_cache() == 4  # two entries left, in two layers
    assert function(stack, f)["deletes"] == 6
    assert layer(stack, "local")["deletes"] == 3
    assert layer(stack, "shared")["deletes"] == 3


def test_a_raising_function_counts_a_compute_error(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def broken() -> int:
        raise KeyError("nope")

    for _ in range(2):
        with pytest.raises(KeyError):
            broken()
    assert function(stack, broken) == {"misses": 2, "computations": 2, "compute_errors": 2}
    assert layer(stack, "local") == {"misses": 2}


def test_an_unserializable_result_counts_errors(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def lock() -> Any:
        return threading.Lock()  # pickle refuses it, for the shared and the local layer

    lock()
    assert function(stack, lock) == {"misses": 1, "computations": 1, "errors": 2}


def test_in_process_waits_under_atomic_writes(stack: CacheStack) -> None:
    started = threading.Event()

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=stack)
    def slow() -> int:
        started.set()
        time.sleep(0.2)
        return 1

    leader = threading.Thread(target=slow)
    leader.start()
    started.wait(5)
    assert slow() == 1  # waits for the leader's flight
    leader.join()
    assert function(stack, slow) == {"misses": 2, "computations": 1, "sets": 2, "lock_waits": 1}
    assert "lock_waits" not in layer(stack, "shared"), "a backend's lock_waits are other processes'"


# -- direct calls of the stack ------------------------------------------------------------------


def test_stack_get_set_delete_count_per_layer(stack: CacheStack) -> None:
    assert stack.get("k") is None
    stack.set("k", 1)
    assert stack.get("k") == 1
    stack.local_cache.cache.clear()
    assert stack.get("k") == 1  # a shared hit, copied into the local layer
    assert stack.delete("k") is True
    assert layer(stack, "local") == {"hits": 1, "misses": 2, "sets": 2, "deletes": 1}
    assert layer(stack, "shared") == {"hits": 1, "misses": 1, "sets": 1, "deletes": 1}
    assert stack.stats()["functions"] == {}


# -- what the backends count --------------------------------------------------------------------


def test_simplecache_counts_an_unreadable_entry(stack: CacheStack) -> None:
    stack.set("old", Unreadable())
    assert stack.get("old", "default") == "default"  # local: unreadable; shared: the same
    assert layer(stack, "local")["deserialization_failures"] == 1
    assert layer(stack, "shared")["deserialization_failures"] == 1
    assert layer(stack, "local")["misses"] == 1


def test_filesystemcache_counts_a_corrupted_file(tmp_path: Path) -> None:
    stack = make_stack({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")})

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    for entry in (tmp_path / "c").glob("*.entry"):
        entry.write_bytes(b"garbage, not an entry")
    stack.local_cache.cache.clear()
    f(1)  # the unreadable file is a miss: computed again
    assert layer(stack, "shared") == {"misses": 2, "sets": 2, "deserialization_failures": 1}
    assert function(stack, f)["computations"] == 2


def test_redis_counts_a_corrupted_entry(redis_server: RedisServer, redis_url: str) -> None:
    stack = make_stack(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "st_",
        }
    )

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    redis_server.client().set("st_" + f.cache_key(1), b"\x80\x05garbage")
    assert f(1) == 1
    assert layer(stack, "shared") == {"misses": 1, "sets": 1, "deserialization_failures": 1}
    assert function(stack, f) == {"misses": 1, "sets": 2, "computations": 1}


def test_rediscache_that_raises_counts_the_unreadable_entry(
    redis_server: RedisServer, redis_url: str
) -> None:
    stack = make_stack(
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_KEY_PREFIX": "st_"}
    )
    redis_server.client().set("st_k", b"\x80\x05garbage")
    with pytest.raises(stratacache.DeserializationError):
        stack.get("k")
    assert layer(stack, "shared") == {"deserialization_failures": 1}


def test_a_stopped_redis_counts_errors(make_redis_server: Callable[[], RedisServer]) -> None:
    server = make_redis_server()
    config = {"CACHE_REDIS_URL": server.url, "CACHE_KEY_PREFIX": "st_"}
    quiet = make_stack({**config, "CACHE_TYPE": "RedisCacheNoExceptions"})
    loud = make_stack({**config, "CACHE_TYPE": "RedisCache"})

    @cached_for(minutes=1, stack=quiet)
    def f(x: int) -> int:
        return x

    @cached_for(minutes=1, stack=loud)
    def g(x: int) -> int:
        return x

    server.stop()
    assert f(1) == 1  # served without the shared layer
    assert f(2) == 2  # within the back-off: Redis is skipped, which counts too
    shared = layer(quiet, "shared")
    assert shared["errors"] == 4, "a read and a write per call, failed or skipped"
    assert shared["misses"] == 2
    assert "sets" not in shared
    assert function(quiet, f) == {"misses": 2, "sets": 2, "computations": 2}  # local sets

    with pytest.raises(RedisCacheError):
        g(1)
    assert layer(loud, "shared") == {"errors": 1}
    assert function(loud, g) == {"errors": 1}


@pytest.mark.parametrize("mode", ["at_most_once", "at_least_once"])
def test_an_atomic_commit_to_a_stopped_redis_counts_no_shared_set(
    make_redis_server: Callable[[], RedisServer], mode: str
) -> None:
    server = make_redis_server()
    stack = make_stack({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": server.url})

    @cached_for(minutes=1, atomic_writes=mode, stack=stack)
    def f(x: int) -> int:
        return x

    server.stop()
    assert f(1) == 1
    assert "sets" not in layer(stack, "shared"), "nothing reached Redis"
    assert function(stack, f)["sets"] == 1  # the local copy only


def test_redis_atomic_counts_lock_waits(redis_url: str) -> None:
    config = {
        "CACHE_TYPE": "RedisCacheAtomic",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": "st_",
    }
    # Two stacks stand for two processes: each has its own in-process flight.
    first, second = make_stack(config), make_stack(config)
    computing = threading.Event()

    def compute() -> int:
        computing.set()
        time.sleep(0.3)
        return 42

    holder = cached_for(minutes=1, atomic_writes="at_most_once", stack=first)(compute)
    waiter = cached_for(minutes=1, atomic_writes="at_most_once", stack=second)(compute)
    thread = threading.Thread(target=holder)
    thread.start()
    computing.wait(5)
    assert waiter() == 42  # polls the holder's lock, then reads its result
    thread.join()
    assert layer(second, "shared")["lock_waits"] == 1, "one wait, however many polls"
    assert function(second, waiter) == {"misses": 1, "sets": 1, "lock_waits": 1}
    assert layer(first, "shared").get("lock_waits", 0) == 0
    assert function(first, holder) == {"misses": 1, "sets": 2, "computations": 1}


def test_an_atomic_wait_that_times_out_counts_an_error(redis_url: str) -> None:
    stack = make_stack(
        {
            "CACHE_TYPE": "RedisCacheAtomic",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "st_",
            "CACHE_ATOMIC_WAIT": 0.1,
        }
    )

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=stack)
    def f() -> int:
        return 1

    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCacheAtomic)
    backend.client.set(backend._lock_key(f.cache_key()), "another process", px=5000)
    with pytest.raises(AtomicWaitTimeout):
        f()
    assert function(stack, f) == {"misses": 1, "errors": 1}
    assert layer(stack, "shared")["lock_waits"] == 1


# -- reset, configure, CACHE_STATS ---------------------------------------------------------------


def test_reset_zeroes_every_counter_and_keeps_the_functions(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    stack.set("k", Unreadable())
    stack.get("k")
    stack.reset_stats()
    snapshot = stack.stats()
    assert all(counts == ZERO_LAYER for counts in snapshot["layers"].values())
    assert snapshot["functions"] == {f"{__name__}.{f.__qualname__}": ZERO_FUNCTION}
    f(1)
    assert function(stack, f) == {"local_hits": 1}


def test_counts_survive_configure_even_with_another_backend(tmp_path: Path) -> None:
    stack = make_stack({"CACHE_TYPE": "SimpleCache"})

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")})
    f(1)  # the new layers are empty: computed again
    f(1)
    assert function(stack, f) == {"local_hits": 2, "misses": 2, "sets": 4, "computations": 2}
    assert layer(stack, "shared") == {"misses": 2, "sets": 2}
    stack.shared_cache.cache.stats.errors += 1  # the backend counts into the layer's counters
    assert layer(stack, "shared")["errors"] == 1


def test_cache_stats_off_counts_nothing(stack: CacheStack, tmp_path: Path) -> None:
    stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_STATS": False})

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    for _ in range(3):
        f(1)
    f.invalidate(1)
    f.clear_cache()
    stack.set("k", Unreadable())
    stack.get("k")
    snapshot = stack.stats()
    assert snapshot["enabled"] is False
    assert all(counts == ZERO_LAYER for counts in snapshot["layers"].values())
    assert snapshot["functions"][f"{__name__}.{f.__qualname__}"] == ZERO_FUNCTION

    stack.configure({"CACHE_TYPE": "SimpleCache"})  # counting again, from where it stopped
    f(1)
    f(1)
    assert stack.stats()["enabled"] is True
    assert function(stack, f) == {"local_hits": 1, "misses": 1, "sets": 2, "computations": 1}


def test_cache_stats_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_STATS", "false")
    stack = CacheStack()
    stack.configure()
    assert stack.stats()["enabled"] is False


# -- threads -------------------------------------------------------------------------------------


def test_threads_hammering_count_every_call(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    @cached_for(minutes=1, local_ram_cache_only=True, no_serialization=True, stack=stack)
    def g(x: int) -> int:
        return x

    f(1)
    g(1)
    threads, calls = 16, 5_000
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    try:
        barrier = threading.Barrier(threads)

        def hammer() -> None:
            barrier.wait()
            for _ in range(calls):
                f(1)
                g(1)
                stack.get(f.cache_key(1))

        workers = [threading.Thread(target=hammer) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(switch)
    total = threads * calls
    counted = (
        function(stack, f)["local_hits"],
        function(stack, g)["local_hits"],
        layer(stack, "local")["hits"],
    )
    expected = (total, total, 2 * total)
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        assert counted == expected  # exact with the GIL (see stratacache.stats)
    else:  # pragma: no cover - free-threaded builds may lose increments
        assert all(0 < c <= e for c, e in zip(counted, expected, strict=True))
    assert layer(stack, "local")["misses"] == 1
