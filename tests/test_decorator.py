"""cached_for: the read path, options, keys of calls, invalidation and single flight."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import Counter
from typing import Any, ClassVar

import pytest

import stratacache
from stratacache import NO_VALUE, CacheStack, cached_for
from stratacache_plugins.simple import SimpleCache


class Calls(Counter[Any]):
    """Counts the calls of test functions."""


@pytest.fixture
def calls() -> Calls:
    return Calls()


def test_second_call_hits(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=5, stack=stack)
    def rates(currency: str) -> dict[str, float]:
        calls[currency] += 1
        return {"USD": 1.1}

    assert rates("EUR") == {"USD": 1.1}
    assert rates("EUR") == {"USD": 1.1}
    assert rates("GBP") == {"USD": 1.1}
    assert calls == {"EUR": 1, "GBP": 1}


def test_read_path_local_then_shared_then_function(stack: CacheStack, calls: Calls) -> None:
    @cached_for(hours=1, stack=stack)
    def f(x: int) -> int:
        calls[x] += 1
        return x * 10

    assert f(1) == 10
    key = next(iter(stack.local_cache.cache._cache))
    assert stack.shared_cache.cache.get(key) == 10, "computed values are written to shared"
    stack.local_cache.cache.clear()
    assert f(1) == 10
    assert calls[1] == 1, "a shared hit does not call the function"
    assert stack.local_cache.cache.get(key) == 10, "a shared hit fills the local layer"
    stack.shared_cache.cache.clear()
    assert f(1) == 10
    assert calls[1] == 1, "a local hit does not read the shared layer"


def test_same_key_for_equivalent_calls(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int, y: int = 2, *, z: str = "z") -> tuple[int, int, str]:
        calls["f"] += 1
        return (x, y, z)

    assert f(1) == f(x=1) == f(1, y=2) == f(1, 2) == f(y=2, x=1) == f(1, z="z") == (1, 2, "z")
    assert calls["f"] == 1
    f(1, 3)
    f(1, z="other")
    assert calls["f"] == 3


def test_none_is_cached(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, stack=stack)
    def nothing() -> None:
        calls["nothing"] += 1

    assert nothing() is None
    assert nothing() is None
    assert calls["nothing"] == 1


def test_exceptions_are_never_cached(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, stack=stack)
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("first call fails")
        return "ok"

    with pytest.raises(RuntimeError):
        flaky()
    assert flaky() == "ok"
    assert flaky() == "ok"
    assert calls["flaky"] == 2


def test_timeouts_reach_each_layer() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache", "LOCALCACHE_DEFAULT_TIMEOUT": 60})
    now = time.monotonic()

    @cached_for(hours=1, stack=stack)
    def both() -> int:
        return 1

    @cached_for(seconds=30, stack=stack)
    def short() -> int:
        return 2

    @cached_for(hours=2, local_ram_cache_only=True, stack=stack)
    def local_only() -> int:
        return 3

    @cached_for(stack=stack)
    def default() -> int:
        return 4

    for f in (both, short, local_only, default):
        f()

    def expiry(layer: stratacache.Layer, name: str) -> float | None:
        for key, entry in layer.cache._cache.items():  # type: ignore[attr-defined]
            if f".{name}}}(" in key:
                return float(entry[0]) - now
        return None

    def near(value: float | None, expected: float) -> bool:
        return value is not None and abs(value - expected) < 5

    assert near(expiry(stack.shared_cache, "both"), 3600)
    assert near(expiry(stack.local_cache, "both"), 60), "the local copy lives at most 60 s"
    assert near(expiry(stack.local_cache, "short"), 30)
    assert near(expiry(stack.local_cache, "local_only"), 7200), "local-only keeps the full time"
    assert expiry(stack.shared_cache, "local_only") is None, "local-only never writes shared"
    assert near(expiry(stack.shared_cache, "default"), 300), "no duration: CACHE_DEFAULT_TIMEOUT"


def test_local_ram_cache_only_never_touches_shared(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, local_ram_cache_only=True, stack=stack)
    def f(x: int) -> list[int]:
        calls[x] += 1
        return [x]

    assert f(1) == [1]
    assert f(1) == [1]
    assert calls[1] == 1
    assert len(stack.shared_cache.cache) == 0  # type: ignore[arg-type]


def test_no_serialization_keeps_the_object(stack: CacheStack) -> None:
    class Unpicklable:
        def __init__(self) -> None:
            self.lock = threading.Lock()

    @cached_for(minutes=30, local_ram_cache_only=True, no_serialization=True, stack=stack)
    def load_user(user_id: int) -> Unpicklable:
        return Unpicklable()

    first = load_user(1)
    assert load_user(1) is first
    assert len(stack.local_cache_no_serializer.cache) == 1  # type: ignore[arg-type]
    assert len(stack.local_cache.cache) == 0  # type: ignore[arg-type]


def test_serialized_layers_return_copies(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f() -> dict[str, list[int]]:
        return {"items": [1]}

    f()["items"].append(2)
    assert f() == {"items": [1]}


def test_unpicklable_result_is_returned_and_not_stored(
    stack: CacheStack, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    @cached_for(minutes=1, stack=stack)
    def opener() -> Any:
        calls["opener"] += 1
        return lambda: "not picklable"

    with caplog.at_level(logging.WARNING, logger="stratacache.decorator"):
        assert opener()() == "not picklable"
        assert opener()() == "not picklable"
    assert calls["opener"] == 2
    assert len(stack.shared_cache.cache) == 0  # type: ignore[arg-type]
    assert len(stack.local_cache.cache) == 0  # type: ignore[arg-type]
    assert len([r for r in caplog.records if "cannot be serialized" in r.message]) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"no_serialization": True}, "requires local_ram_cache_only=True"),
        ({"atomic_writes": "exactly_once"}, "'exactly_once' is not a mode"),
        ({"minutes": -1}, "must not be negative"),
        ({"seconds": float("nan")}, "finite number of seconds"),
    ],
)
def test_invalid_options_fail_at_decoration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cached_for(**options)


def test_async_generators_are_refused() -> None:
    async def fetch() -> Any:
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        cached_for(minutes=1)(fetch)


def test_classmethod_objects_are_refused_with_a_fix() -> None:
    with pytest.raises(TypeError, match="below @classmethod"):
        cached_for(minutes=1)(classmethod(lambda cls: 1))  # type: ignore[arg-type]


def test_wrapper_keeps_identity(stack: CacheStack) -> None:
    def documented(x: int, y: str = "a") -> str:
        """Say what it does."""
        return y * x

    cached = cached_for(minutes=1, stack=stack)(documented)
    assert cached.__name__ == "documented"
    assert cached.__doc__ == "Say what it does."
    assert cached.__wrapped__ is documented
    assert cached.uncached is documented
    assert inspect.signature(cached) == inspect.signature(documented)


def test_invalidate_one_call_in_every_layer(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        calls[x] += 1
        return x

    f(1)
    f(2)
    assert f.invalidate(1) is True
    assert f.invalidate(x=1) is False
    f(1)
    f(2)
    assert calls == {1: 2, 2: 1}


def test_clear_cache_removes_only_that_function(stack: CacheStack, calls: Calls) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        calls[f"f{x}"] += 1
        return x

    @cached_for(minutes=1, stack=stack)
    def g(x: int) -> int:
        calls[f"g{x}"] += 1
        return x

    for x in range(3):
        f(x)
        g(x)
    assert f.clear_cache() == 6, "three entries in each of the two layers"
    for x in range(3):
        f(x)
        g(x)
    assert calls == {"f0": 2, "f1": 2, "f2": 2, "g0": 1, "g1": 1, "g2": 1}


class Repository:
    """A class whose instances name their state in __cache_key__."""

    calls = 0

    def __init__(self, region: str) -> None:
        self.region = region

    def __cache_key__(self) -> str:
        return self.region

    @cached_for(minutes=1)
    def count(self, kind: str) -> str:
        Repository.calls += 1
        return f"{self.region}:{kind}"

    @classmethod
    @cached_for(minutes=1)
    def default_region(cls) -> str:
        Repository.calls += 1
        return cls.__name__


def test_methods_key_on_self_and_cls() -> None:
    stratacache.configure({"CACHE_TYPE": "SimpleCache"})
    Repository.calls = 0
    eu, eu_again, us = Repository("eu"), Repository("eu"), Repository("us")
    assert eu.count("users") == "eu:users"
    assert eu_again.count("users") == "eu:users"
    assert us.count("users") == "us:users"
    assert Repository.default_region() == Repository.default_region() == "Repository"
    assert Repository.calls == 3
    assert Repository.count.invalidate(eu, "users") is True
    assert eu.count.clear_cache() == 2, "us, in the local and the shared layer"


def test_method_on_instance_without_stable_key_says_how_to_fix(stack: CacheStack) -> None:
    class Service:
        @cached_for(minutes=1, stack=stack)
        def get(self) -> int:
            return 1

    with pytest.raises(TypeError, match="__cache_key__"):
        Service().get()


def test_uses_the_environment_when_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TYPE", "SimpleCache")
    stratacache.cache._state = None

    @cached_for(minutes=1)
    def f() -> int:
        return 1

    f()
    assert type(stratacache.cache.shared_cache.cache).__name__ == "SimpleCache"


def test_at_most_once_single_flight_under_threads(stack: CacheStack, calls: Calls) -> None:
    started = threading.Event()

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=stack)
    def slow(x: int) -> dict[str, int]:
        calls[x] += 1
        started.set()
        time.sleep(0.2)
        return {"x": x}

    results: list[Any] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(slow(7))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert calls[7] == 1
    assert results == [{"x": 7}] * 16
    assert len({id(r) for r in results}) == 16, "each caller gets its own copy"


def test_single_flight_waiters_get_the_leaders_exception(stack: CacheStack, calls: Calls) -> None:
    # Issue 11 item 10: the waiters of a failed leader get its exception at once, instead of
    # each starting a new attempt in turn (16 callers of a 0.2 s failure waited 3.2 s). The
    # next call after the wave runs the function again: exceptions are never cached.
    gate = threading.Event()

    @cached_for(minutes=1, atomic_writes="at_least_once", stack=stack)
    def sometimes() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            gate.wait(5)
            raise RuntimeError("leader fails")
        return "ok"

    outcomes: list[str] = []

    def call() -> None:
        try:
            outcomes.append(sometimes())
        except RuntimeError:
            outcomes.append("raised")

    leader = threading.Thread(target=call)
    leader.start()
    time.sleep(0.05)
    followers = [threading.Thread(target=call) for _ in range(4)]
    for t in followers:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in [leader, *followers]:
        t.join(timeout=10)
    assert sorted(outcomes) == ["raised"] * 5
    assert calls["n"] == 1
    assert sometimes() == "ok"
    assert calls["n"] == 2


def test_stack_get_set_delete_clear(stack: CacheStack) -> None:
    assert stack.get("k", "default") == "default"
    assert stack.set("k", None) is True
    assert stack.get("k", "default") is None
    stack.local_cache.cache.clear()
    assert stack.get("k", "default") is None, "from the shared layer"
    assert stack.local_cache.cache.lookup("k") is None, "copied back to the local layer"
    assert stack.delete("k") is True
    assert stack.local_cache.lookup("k") is NO_VALUE
    assert stack.shared_cache.lookup("k") is NO_VALUE
    stack.set("a", 1)
    assert stack.clear() is True
    assert stack.get("a") is None


class AuditedSimpleCache(SimpleCache):
    """A custom local backend, as users write them: it overrides set."""

    writes: ClassVar[list[str]] = []

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        AuditedSimpleCache.writes.append(key)
        return super().set(key, value, timeout)


def test_a_subclass_overriding_set_sees_decorated_writes() -> None:
    stack = CacheStack()
    stack.configure({"LOCALCACHE_TYPE": "tests.test_decorator:AuditedSimpleCache"})
    AuditedSimpleCache.writes.clear()

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    assert AuditedSimpleCache.writes == [f.cache_key(1)]
    assert f.clear_cache() == 1, "and its entries are still tracked"


def test_reconfiguring_under_threads_is_safe() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x * 2

    errors: list[BaseException] = []
    stop = threading.Event()

    def caller() -> None:
        try:
            while not stop.is_set():
                for x in range(20):
                    assert f(x) == x * 2
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        stack.configure({"CACHE_TYPE": "SimpleCache" if i % 2 else "NullCache"})
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors[:1]


def test_configure_takes_settings_a_mapping_or_overrides() -> None:
    stack = CacheStack()
    assert repr(stack) == "<CacheStack (not configured yet)>"
    settings = stratacache.CacheSettings(CACHE_TYPE="SimpleCache")
    assert stack.configure(settings) is settings
    assert stack.settings is settings
    assert stack.configure(CACHE_DEFAULT_TIMEOUT=5).cache_default_timeout == 5
    with pytest.raises(TypeError, match="not both"):
        stack.configure({"CACHE_TYPE": "SimpleCache"}, CACHE_DEFAULT_TIMEOUT=5)
    assert "shared=NullCache(default_timeout=5)" in repr(stack)
    assert repr(stack.shared_cache) == "<Tier shared: NullCache(default_timeout=5)>"
    assert stack.shared_cache.config.type == "NullCache"


class CoordinatingCache(SimpleCache):
    """A shared backend that records the atomic_writes protocol (as Redis will run it)."""

    log: ClassVar[list[str]] = []
    answer: ClassVar[Any] = NO_VALUE

    def start_computation(
        self, key: str, timeout: Any, group: str | None, mode: str
    ) -> stratacache.Computation:
        outer = self

        class Recorded(stratacache.Computation):
            def commit(self, value: Any) -> Any:
                outer.log.append(f"commit {mode}")
                return super().commit(value)

            def abort(self) -> None:
                outer.log.append("abort")

        self.log.append(f"start {mode} {group}")
        return Recorded(self, key, timeout, group, CoordinatingCache.answer)


@pytest.fixture
def coordinated() -> CacheStack:
    CoordinatingCache.log.clear()
    CoordinatingCache.answer = NO_VALUE
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "tests.test_decorator:CoordinatingCache"})
    return stack


def test_atomic_writes_go_through_the_shared_backend(coordinated: CacheStack) -> None:
    @cached_for(minutes=1, atomic_writes="at_most_once", stack=coordinated)
    def f(x: int) -> int:
        return x

    assert f(1) == 1
    assert f(1) == 1
    assert CoordinatingCache.log == [
        f"start at_most_once {f.cache_key(1)[1:].split('}')[0]}",
        "commit at_most_once",
    ]
    assert coordinated.local_cache.cache.get(f.cache_key(1)) == 1, "the local layer is filled"


def test_a_value_stored_by_another_process_is_used_as_is(
    coordinated: CacheStack, calls: Calls
) -> None:
    CoordinatingCache.answer = "theirs"

    @cached_for(minutes=1, atomic_writes="at_least_once", stack=coordinated)
    def f() -> str:
        calls["f"] += 1
        return "ours"

    assert f() == "theirs"
    assert calls["f"] == 0


def test_a_failed_computation_is_aborted(coordinated: CacheStack) -> None:
    @cached_for(minutes=1, atomic_writes="at_most_once", stack=coordinated)
    def boom() -> int:
        raise RuntimeError("no")

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=coordinated)
    def unpicklable() -> Any:
        return lambda: 1

    with pytest.raises(RuntimeError):
        boom()
    assert unpicklable()() == 1
    assert [entry.split()[0] for entry in CoordinatingCache.log] == [
        "start",
        "abort",
        "start",
        "commit",
        "abort",
    ]


def test_decorator_without_parentheses_says_how_to_write_it() -> None:
    def f() -> int:
        return 1

    with pytest.raises(TypeError, match=r"write @cached_for\(minutes=5\)"):
        cached_for(f)  # type: ignore[call-overload,arg-type]


def test_misspelt_cache_option_is_a_configuration_error(tmp_path: Any) -> None:
    with pytest.raises(stratacache.ConfigurationError) as info:
        CacheStack().configure(
            {
                "CACHE_TYPE": "FileSystemCache",
                "CACHE_DIR": str(tmp_path),
                "CACHE_OPTIONS": '{"modee": 384}',
            }
        )
    assert "CACHE_OPTIONS={'modee': 384}" in str(info.value)
    assert "it accepts: cache_dir, threshold, default_timeout, mode" in str(info.value)


def test_layer_config_shows_what_the_backend_got_with_secrets_masked() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    assert set(stack.shared_cache.config.options) == {"default_timeout", "threshold", "serializer"}
    # A Redis tier is built without connecting: its password is masked in the config.
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": "redis://127.0.0.1:1/0",
            "CACHE_REDIS_PASSWORD": "hunter2",
        }
    )
    assert stack.shared_cache.config.options["password"] == "**********"
    assert "hunter2" not in repr(stack.shared_cache.config)


def test_invalidate_reports_false_when_no_layer_held_it(stack: CacheStack) -> None:
    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    assert f.invalidate(1) is False


def test_bound_methods_bind_invalidate_and_cache_key(stack: CacheStack, calls: Calls) -> None:
    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        def __cache_key__(self) -> str:
            return self.name

        @cached_for(minutes=1, stack=stack)
        def lookup(self, x: int, flag: int = 0) -> str:
            calls[(self.name, x)] += 1
            return f"{self.name}:{x}"

    a, b = Service("a"), Service("b")
    assert a.lookup(5) == "a:5"
    assert b.lookup(5) == "b:5"
    assert a.lookup.cache_key(5) == Service.lookup.cache_key(a, 5)
    assert a.lookup.invalidate(5) is True
    assert a.lookup(5) == "a:5"
    assert b.lookup(5) == "b:5"
    assert calls == {("a", 5): 2, ("b", 5): 1}
    assert a.lookup.clear_cache() == 4
    assert Service.lookup.__name__ == "lookup"
    assert Service.lookup.uncached(a, 1) == "a:1"


def test_atomic_writes_on_a_backend_that_cannot_coordinate_warns_once(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path)})

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=stack)
    def f(x: int) -> int:
        return x

    with caplog.at_level(logging.WARNING, logger="stratacache.decorator"):
        f(1)
        f(2)
    warnings = [r.message for r in caplog.records if "RedisCacheAtomic" in r.message]
    assert len(warnings) == 1
    assert "(FileSystemCache) does not coordinate processes" in warnings[0]
