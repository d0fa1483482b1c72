"""A stack of N tiers: CACHE_LAYERS, read-through backfill, per-function tiers, hooks, stats.

The backend conformance suite (``stratacache.testing.BackendConformance``) checks one
``Backend`` (``add``, ``inc``, ``set_many``...); a :class:`CacheStack` is not a backend, so a
three-tier stack (SimpleCache, then FileSystemCache, then RedisCache on the suite's
redis-server) gets its own focused class here, :class:`TestThreeTierStack`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stratacache import (
    NO_VALUE,
    Backend,
    CacheStack,
    Computation,
    ConfigurationError,
    TierSpecOf,
    cached_for,
    hookimpl,
    plugin_manager,
)
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer

from .redis_server import RedisServer

TIER_NAMES = ("memory", "disk", "redis")


@pytest.fixture
def layers(tmp_path: Path, redis_url: str) -> list[dict[str, Any]]:
    """CACHE_LAYERS of three tiers: memory, then a directory, then the suite's Redis."""
    return [
        {"type": "SimpleCache", "name": "memory"},
        {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path / "disk")},
        {"type": "RedisCache", "name": "redis", "url": redis_url},
    ]


def configured(layers: list[dict[str, Any]]) -> CacheStack:
    stack = CacheStack()
    stack.configure({"CACHE_LAYERS": layers})
    return stack


@pytest.fixture
def three_tiers(layers: list[dict[str, Any]]) -> CacheStack:
    """A stack configured with the three CACHE_LAYERS tiers."""
    return configured(layers)


def group_of(func: Any) -> str:
    """The key-tracking group of a decorated function: its module.qualname."""
    return f"{func.__module__}.{func.__qualname__}"


def disk_entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "disk").glob("*.entry"))


@dataclass(frozen=True)
class Op:
    """One operation a tier made through the hooks."""

    hook: str
    layer: str
    group: str | None = None
    computation: Computation | None = None


class Recorder:
    """A hook plugin that observes every tier operation, as a metrics plugin would."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def layers(self) -> set[str]:
        return {op.layer for op in self.ops}

    @hookimpl(wrapper=True)
    def stratacache_get(self, layer: str, group: str | None) -> Generator[None, Any, Any]:
        self.ops.append(Op("get", layer, group))
        return (yield)

    @hookimpl(wrapper=True)
    def stratacache_set(
        self, layer: str, group: str | None, computation: Computation | None
    ) -> Generator[None, Any, Any]:
        self.ops.append(Op("set", layer, group, computation))
        return (yield)

    @hookimpl(wrapper=True)
    def stratacache_delete(self, layer: str, group: str | None) -> Generator[None, Any, Any]:
        self.ops.append(Op("delete", layer, group))
        return (yield)

    @hookimpl(wrapper=True)
    def stratacache_clear_group(self, layer: str, group: str) -> Generator[None, Any, Any]:
        self.ops.append(Op("clear_group", layer, group))
        return (yield)

    @hookimpl(wrapper=True)
    def stratacache_clear(self, layer: str) -> Generator[None, Any, Any]:
        self.ops.append(Op("clear", layer))
        return (yield)


@pytest.fixture
def recorder(fresh_plugins: None) -> Iterator[Recorder]:
    """A registered Recorder; stacks configured after it see it."""
    recording = Recorder()
    plugin_manager().register(recording, name="recorder")
    yield recording
    plugin_manager().unregister(name="recorder")


@pytest.fixture
def recorded_three_tiers(recorder: Recorder, layers: list[dict[str, Any]]) -> CacheStack:
    """The three-tier stack, configured once the Recorder is registered."""
    return configured(layers)


class TestThreeTierStack:
    """SimpleCache > FileSystemCache > RedisCache, configured with CACHE_LAYERS."""

    def test_the_tiers_are_the_specs_first_to_deepest(self, three_tiers: CacheStack) -> None:
        assert tuple(t.name for t in three_tiers.tiers) == TIER_NAMES
        types = [type(t.cache) for t in three_tiers.tiers]
        assert types == [SimpleCache, FileSystemCache, RedisCache]
        assert three_tiers.tier("disk") is three_tiers.tiers[1]
        assert three_tiers.local_cache is three_tiers.tier("memory")
        assert three_tiers.shared_cache is three_tiers.tier("redis")

    def test_a_by_reference_tier_is_added_when_no_spec_gives_one(
        self, three_tiers: CacheStack
    ) -> None:
        by_reference = three_tiers.local_cache_no_serializer
        assert by_reference.name == "local_no_serializer"
        assert type(by_reference.cache) is SimpleCacheNoSerializer
        assert by_reference not in three_tiers.tiers

    def test_an_unknown_tier_name_is_a_key_error_listing_the_tiers(
        self, three_tiers: CacheStack
    ) -> None:
        with pytest.raises(KeyError, match=r"'ram'.*memory, disk, redis"):
            three_tiers.tier("ram")

    def test_set_writes_every_tier_and_get_reads_it(self, three_tiers: CacheStack) -> None:
        assert three_tiers.set("k", {"a": [1, 2]}) is True
        for tier in three_tiers.tiers:
            assert tier.cache.lookup("k") == {"a": [1, 2]}, tier.name
        assert three_tiers.get("k") == {"a": [1, 2]}

    def test_a_miss_in_every_tier_is_the_default(self, three_tiers: CacheStack) -> None:
        assert three_tiers.get("absent") is None
        assert three_tiers.get("absent", "fallback") == "fallback"

    def test_none_is_a_value_in_every_tier(self, three_tiers: CacheStack) -> None:
        three_tiers.set("none", None)
        for tier in three_tiers.tiers:
            assert tier.cache.lookup("none") is None, tier.name
        assert three_tiers.get("none", "fallback") is None

    def test_a_function_returning_none_computes_once(self, three_tiers: CacheStack) -> None:
        calls: list[int] = []

        @cached_for(minutes=1, stack=three_tiers)
        def nothing(x: int) -> None:
            calls.append(x)

        assert nothing(1) is None
        assert nothing(1) is None
        three_tiers.tier("memory").cache.clear()
        three_tiers.tier("disk").cache.clear()
        assert nothing(1) is None
        assert calls == [1]

    def test_delete_removes_the_key_from_every_tier(self, three_tiers: CacheStack) -> None:
        three_tiers.set("k", 1)
        assert three_tiers.delete("k") is True
        for tier in three_tiers.tiers:
            assert tier.cache.lookup("k") is NO_VALUE, tier.name
        assert three_tiers.get("k") is None
        assert three_tiers.delete("k") is False

    def test_get_of_a_deeper_hit_fills_the_tiers_above(self, three_tiers: CacheStack) -> None:
        three_tiers.set("k", "v")
        three_tiers.tier("memory").cache.clear()
        three_tiers.tier("disk").cache.clear()
        assert three_tiers.get("k") == "v"
        assert three_tiers.tier("memory").cache.lookup("k") == "v"
        assert three_tiers.tier("disk").cache.lookup("k") == "v"

    def test_clear_empties_every_tier(self, three_tiers: CacheStack) -> None:
        three_tiers.set("a", 1)
        three_tiers.set("b", 2)
        assert three_tiers.clear() is True
        for tier in three_tiers.tiers:
            assert tier.cache.lookup("a") is NO_VALUE, tier.name
            assert tier.cache.lookup("b") is NO_VALUE, tier.name

    def test_clear_group_deletes_exactly_the_function_entries_in_every_tier(
        self, three_tiers: CacheStack
    ) -> None:
        @cached_for(minutes=1, stack=three_tiers)
        def f(x: int) -> int:
            return x

        @cached_for(minutes=1, stack=three_tiers)
        def g(x: int) -> int:
            return -x

        f(1)
        f(2)
        g(1)
        three_tiers.set("plain", "p")
        assert three_tiers.clear_group(group_of(f)) == 2 * len(TIER_NAMES)
        for tier in three_tiers.tiers:
            assert tier.cache.lookup(f.cache_key(1)) is NO_VALUE, tier.name
            assert tier.cache.lookup(f.cache_key(2)) is NO_VALUE, tier.name
            assert tier.cache.lookup(g.cache_key(1)) == -1, tier.name
            assert tier.cache.lookup("plain") == "p", tier.name
        assert three_tiers.clear_group(group_of(f)) == 0

    def test_clear_cache_of_a_function_reaches_every_tier(self, three_tiers: CacheStack) -> None:
        calls: list[int] = []

        @cached_for(minutes=1, stack=three_tiers)
        def f(x: int) -> int:
            calls.append(x)
            return x

        f(1)
        assert f.clear_cache() == len(TIER_NAMES)
        assert f(1) == 1
        assert calls == [1, 1]

    def test_invalidate_removes_one_call_from_every_tier(self, three_tiers: CacheStack) -> None:
        @cached_for(minutes=1, stack=three_tiers)
        def f(x: int) -> int:
            return x

        f(1)
        f(2)
        assert f.invalidate(1) is True
        for tier in three_tiers.tiers:
            assert tier.cache.lookup(f.cache_key(1)) is NO_VALUE, tier.name
            assert tier.cache.lookup(f.cache_key(2)) == 2, tier.name
        assert f.invalidate(1) is False

    def test_a_decorated_function_computes_once_through_the_stack(
        self, three_tiers: CacheStack
    ) -> None:
        calls: list[int] = []

        @cached_for(minutes=5, stack=three_tiers)
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        assert [square(3), square(3), square(4)] == [9, 9, 16]
        assert calls == [3, 4]
        for tier in three_tiers.tiers:
            assert tier.cache.lookup(square.cache_key(3)) == 9, tier.name

    def test_another_instance_reads_the_shared_tiers_without_computing(
        self, three_tiers: CacheStack, layers: list[dict[str, Any]]
    ) -> None:
        calls: list[str] = []

        def rates(currency: str) -> dict[str, float]:
            calls.append(currency)
            return {"USD": 1.1}

        here = cached_for(minutes=5, stack=three_tiers)(rates)
        other_stack = configured(layers)  # another process: its own memory, same disk/redis
        there = cached_for(minutes=5, stack=other_stack)(rates)
        assert here("EUR") == {"USD": 1.1}
        assert there("EUR") == {"USD": 1.1}
        assert calls == ["EUR"]
        assert other_stack.tier("memory").cache.lookup(there.cache_key("EUR")) == {"USD": 1.1}


class TestBackfill:
    """A hit in a deeper tier fills the tiers above with the entry's remaining lifetime."""

    def test_a_value_from_tier_2_refills_tiers_0_and_1(self, three_tiers: CacheStack) -> None:
        calls: list[int] = []

        @cached_for(minutes=10, stack=three_tiers)
        def f(x: int) -> dict[str, int]:
            calls.append(x)
            return {"x": x}

        f(1)
        key = f.cache_key(1)
        memory, disk, redis = three_tiers.tiers
        memory.cache.clear()
        disk.cache.clear()
        left_in_redis = redis.cache.lookup_entry(key)[1]
        assert f(1) == {"x": 1}
        assert calls == [1], "the value came from tier 2, not from the function"
        assert isinstance(left_in_redis, float | int), "RedisCache.lookup_entry knows the TTL"
        assert 0 < left_in_redis <= 600
        for tier in (memory, disk):
            value, remaining = tier.cache.lookup_entry(key)
            assert value == {"x": 1}, f"{tier.name} was refilled"
            assert isinstance(remaining, float | int), f"{tier.name} knows its entry's lifetime"
            assert 0 < remaining <= left_in_redis, (
                f"{tier.name} keeps the copy {remaining}s, longer than tier 2 had left"
                f" ({left_in_redis}s)"
            )

    def test_copies_live_no_longer_than_the_entry_below_not_the_function_timeout(
        self, three_tiers: CacheStack
    ) -> None:
        calls: list[int] = []

        @cached_for(minutes=10, stack=three_tiers)
        def f(x: int) -> int:
            calls.append(x)
            return x

        key = f.cache_key(1)
        three_tiers.tier("redis").cache.set(key, 1, timeout=20)  # 20 s left, f says 600
        assert f(1) == 1
        assert calls == []
        for name in ("memory", "disk"):
            value, remaining = three_tiers.tier(name).cache.lookup_entry(key)
            assert value == 1, name
            assert remaining is not None, f"{name}: lookup_entry knows the lifetime"
            assert 0 < remaining <= 20, f"{name} keeps a 20 s entry for {remaining}s"

    def test_a_tier_cap_bounds_its_copies(self, layers: list[dict[str, Any]]) -> None:
        layers[0]["timeout"] = 5
        stack = configured(layers)

        @cached_for(minutes=10, stack=stack)
        def f(x: int) -> int:
            return x

        f(1)
        key = f.cache_key(1)
        memory, disk, redis = stack.tiers
        for tier, most in ((memory, 5), (disk, 600), (redis, 600)):
            remaining = tier.cache.lookup_entry(key)[1]
            assert remaining is not None, f"{tier.name}: lookup_entry knows the lifetime"
            assert 0 < remaining <= most, tier.name
        memory.cache.clear()
        disk.cache.clear()
        f(1)
        remaining = memory.cache.lookup_entry(key)[1]
        assert remaining is not None
        assert 0 < remaining <= 5, "a refill keeps the cap too"

    def test_the_copy_of_an_entry_never_outlives_it_nor_the_tier_cap(self) -> None:
        stack = CacheStack.from_tiers(
            [TierSpecOf(SimpleCache(), name="memory", timeout=7), SimpleCache()]
        )
        memory = stack.tier("memory")
        assert memory.fill_timeout(3, 7) == 3, "the entry below has 3 s left"
        assert memory.fill_timeout(0, 7) is None, "expired on the way up: not copied"
        assert memory.fill_timeout(math.inf, 7) == 7, "never expires below: the tier's timeout"
        assert memory.fill_timeout(None, 7) == 7, "unknown lifetime: the tier's timeout"

    def test_an_entry_backfilled_late_is_not_served_past_its_expiry_in_tier_2(
        self, three_tiers: CacheStack
    ) -> None:
        calls: list[int] = []

        @cached_for(seconds=2, stack=three_tiers)
        def f(x: int) -> int:
            calls.append(x)
            return x

        key = f.cache_key(1)
        f(1)
        written = time.monotonic()
        memory, disk, redis = three_tiers.tiers
        time.sleep(max(0.0, written + 1.5 - time.monotonic()))
        memory.cache.clear()
        disk.cache.clear()
        assert f(1) == 1
        assert calls == [1], "backfilled from tier 2 at ~1.5 s"
        assert memory.cache.lookup(key) == 1
        time.sleep(max(0.0, written + 2.1 - time.monotonic()))
        for tier in (memory, disk, redis):
            assert tier.cache.lookup(key) is NO_VALUE, (
                f"{tier.name} still serves, at ~2.1 s, an entry that expired at 2 s in tier 2"
            )
        assert f(1) == 1
        assert calls == [1, 1]


class TestPerFunctionTiers:
    """cached_for(tiers=...), local_ram_cache_only and no_serialization pick the tiers."""

    def test_tiers_writes_only_the_named_tiers_and_never_touches_the_others(
        self, recorded_three_tiers: CacheStack, recorder: Recorder, tmp_path: Path
    ) -> None:
        stack = recorded_three_tiers
        calls: list[int] = []

        @cached_for(minutes=1, stack=stack, tiers=["memory", "redis"])
        def f(x: int) -> int:
            calls.append(x)
            return x * 2

        assert f(1) == 2
        assert f(1) == 2
        stack.tier("memory").cache.clear()
        assert f(1) == 2
        assert calls == [1]
        assert recorder.layers() == {"memory", "redis"}
        key = f.cache_key(1)
        assert stack.tier("memory").cache.lookup(key) == 2
        assert stack.tier("redis").cache.lookup(key) == 2
        assert stack.tier("disk").cache.lookup(key) is NO_VALUE
        assert disk_entries(tmp_path) == []

    def test_tiers_are_used_in_stack_order_whatever_order_they_are_named_in(
        self, recorded_three_tiers: CacheStack, recorder: Recorder
    ) -> None:
        @cached_for(minutes=1, stack=recorded_three_tiers, tiers=["redis", "memory"])
        def f(x: int) -> int:
            return x

        f(1)
        reads = [op.layer for op in recorder.ops if op.hook == "get"]
        writes = [op.layer for op in recorder.ops if op.hook == "set"]
        assert reads == ["memory", "redis"]
        assert writes == ["redis", "memory"], "deepest first"

    def test_local_ram_cache_only_touches_no_out_of_process_tier(
        self,
        recorded_three_tiers: CacheStack,
        recorder: Recorder,
        redis_server: RedisServer,
        tmp_path: Path,
    ) -> None:
        stack = recorded_three_tiers
        calls: list[int] = []

        @cached_for(minutes=1, stack=stack, local_ram_cache_only=True)
        def f(x: int) -> int:
            calls.append(x)
            return x

        assert [f(1), f(1)] == [1, 1]
        assert calls == [1]
        in_process = {t.name for t in stack.tiers if t.cache.in_process}
        assert in_process == {"memory"}
        assert recorder.layers() == in_process
        assert stack.tier("memory").cache.lookup(f.cache_key(1)) == 1
        assert disk_entries(tmp_path) == []
        assert redis_server.client().dbsize() == 0

    def test_no_serialization_keeps_the_object_itself_in_the_by_reference_tier(
        self, recorded_three_tiers: CacheStack, recorder: Recorder, redis_server: RedisServer
    ) -> None:
        stack = recorded_three_tiers

        class Unpicklable:
            def __reduce__(self) -> Any:
                raise TypeError("not picklable")

        @cached_for(minutes=1, stack=stack, local_ram_cache_only=True, no_serialization=True)
        def make(x: int) -> Unpicklable:
            return Unpicklable()

        first = make(1)
        assert make(1) is first
        by_reference = stack.local_cache_no_serializer
        assert by_reference.cache.lookup(make.cache_key(1)) is first
        assert recorder.layers() == {by_reference.name}
        for tier in stack.tiers:
            assert tier.cache.lookup(make.cache_key(1)) is NO_VALUE, tier.name
        assert redis_server.client().dbsize() == 0

    def test_an_unknown_tier_fails_configure_naming_it_and_the_stack_tiers(
        self, layers: list[dict[str, Any]]
    ) -> None:
        stack = CacheStack()

        @cached_for(minutes=1, stack=stack, tiers=["memory", "ssd"])
        def f(x: int) -> int:
            return x

        with pytest.raises(ConfigurationError) as info:
            stack.configure({"CACHE_LAYERS": layers})
        (problem,) = info.value.problems
        assert group_of(f) in problem
        assert "'ssd'" in problem
        assert "memory, disk, redis" in problem

    def test_an_unknown_tier_of_a_function_decorated_after_configure_fails_its_first_call(
        self, three_tiers: CacheStack
    ) -> None:
        @cached_for(minutes=1, stack=three_tiers, tiers=["ssd"])
        def f(x: int) -> int:
            return x

        with pytest.raises(ValueError, match=r"'ssd'.*its tiers: memory, disk, redis"):
            f(1)


class TestHooks:
    """Hook plugins see every tier operation, atomic commits and clears included."""

    @pytest.fixture
    def atomic_stack(self, recorder: Recorder, redis_url: str) -> CacheStack:
        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": redis_url})
        assert type(stack.shared_cache.cache) is RedisCacheAtomic
        return stack

    def test_an_atomic_commit_reaches_stratacache_set_with_its_computation(
        self, atomic_stack: CacheStack, recorder: Recorder
    ) -> None:
        calls: list[int] = []

        @cached_for(minutes=1, stack=atomic_stack, atomic_writes="at_most_once")
        def f(x: int) -> int:
            calls.append(x)
            return x + 1

        assert f(1) == 2
        assert calls == [1]
        commits = [op for op in recorder.ops if op.hook == "set" and op.computation is not None]
        assert [(op.layer, op.group) for op in commits] == [("shared", group_of(f))]
        assert commits[0].computation is not None
        assert commits[0].computation.key == f.cache_key(1)
        assert atomic_stack.shared_cache.cache.lookup(f.cache_key(1)) == 2
        plain = [op.layer for op in recorder.ops if op.hook == "set" and op.computation is None]
        assert plain == ["local"], "the tier above gets the committed value as a plain write"

    def test_clear_cache_reaches_stratacache_clear_group_for_every_tier(
        self, atomic_stack: CacheStack, recorder: Recorder
    ) -> None:
        @cached_for(minutes=1, stack=atomic_stack, atomic_writes="at_most_once")
        def f(x: int) -> int:
            return x

        f(1)
        recorder.ops.clear()
        assert f.clear_cache() == 2
        every = {"local", "local_no_serializer", "shared"}
        clears = [op for op in recorder.ops if op.hook == "clear_group"]
        assert {op.layer for op in clears} == every
        assert len(clears) == len(every)
        assert {op.group for op in clears} == {group_of(f)}

    def test_stack_clear_reaches_stratacache_clear_for_every_tier(
        self, atomic_stack: CacheStack, recorder: Recorder
    ) -> None:
        atomic_stack.set("k", 1)
        recorder.ops.clear()
        assert atomic_stack.clear() is True
        clears = sorted(op.layer for op in recorder.ops if op.hook == "clear")
        assert clears == ["local", "local_no_serializer", "shared"]
        assert atomic_stack.get("k") is None

    def test_hooks_name_the_cache_layers_tiers(
        self, recorded_three_tiers: CacheStack, recorder: Recorder
    ) -> None:
        @cached_for(minutes=1, stack=recorded_three_tiers)
        def f(x: int) -> int:
            return x

        f(1)
        writes = [(op.layer, op.group) for op in recorder.ops if op.hook == "set"]
        assert writes == [("redis", group_of(f)), ("disk", group_of(f)), ("memory", group_of(f))]


class TestStatistics:
    def test_stats_count_each_cache_layers_tier_by_name(self, three_tiers: CacheStack) -> None:
        @cached_for(minutes=1, stack=three_tiers)
        def f(x: int) -> int:
            return x

        f(1)  # misses everywhere, computed, written to the three tiers
        f(1)  # a memory hit
        three_tiers.tier("memory").cache.clear()
        three_tiers.tier("disk").cache.clear()
        f(1)  # misses memory and disk, hits redis, refills disk and memory
        layers = three_tiers.stats()["layers"]
        counted = {
            name: (layers[name]["hits"], layers[name]["misses"], layers[name]["sets"])
            for name in TIER_NAMES
        }
        assert counted == {"memory": (1, 2, 2), "disk": (0, 2, 2), "redis": (1, 1, 1)}
        function = three_tiers.stats()["functions"][group_of(f)]
        assert (function["local_hits"], function["shared_hits"], function["misses"]) == (1, 1, 1)


class Closing(SimpleCache):
    """A SimpleCache that records its close."""

    def __init__(self, closed: list[str], name: str, *, fail: bool = False) -> None:
        super().__init__()
        self.closed, self.name, self.fail = closed, name, fail

    def close(self) -> None:
        self.closed.append(self.name)
        if self.fail:
            raise OSError("cannot close")


class TestFromTiers:
    """CacheStack.from_tiers(): a stack of backends built in code."""

    def test_from_tiers_serves_cached_for(self, tmp_path: Path) -> None:
        disk = FileSystemCache(str(tmp_path / "fs"))
        stack = CacheStack.from_tiers([SimpleCache(), TierSpecOf(disk, name="disk")])
        assert [t.name for t in stack.tiers] == ["SimpleCache", "disk"]
        assert stack.shared_cache.cache is disk
        calls: list[int] = []

        @cached_for(minutes=1, stack=stack)
        def f(x: int) -> int:
            calls.append(x)
            return x * 3

        assert [f(2), f(2)] == [6, 6]
        assert disk.lookup(f.cache_key(2)) == 6
        stack.tier("SimpleCache").cache.clear()
        assert f(2) == 6
        assert calls == [2]
        assert stack.tier("SimpleCache").cache.lookup(f.cache_key(2)) == 6

    def test_from_tiers_adds_a_by_reference_tier_for_no_serialization(self) -> None:
        stack = CacheStack.from_tiers([SimpleCache()])

        @cached_for(minutes=1, stack=stack, local_ram_cache_only=True, no_serialization=True)
        def f() -> list[int]:
            return [1]

        assert f() is f()
        assert stack.local_cache_no_serializer.name == "local_no_serializer"

    def test_a_timeout_in_tier_spec_of_caps_the_tier(self, tmp_path: Path) -> None:
        stack = CacheStack.from_tiers(
            [TierSpecOf(SimpleCache(), name="memory", timeout=5), FileSystemCache(str(tmp_path))]
        )

        @cached_for(minutes=10, stack=stack)
        def f(x: int) -> int:
            return x

        f(1)
        remaining = stack.tier("memory").cache.lookup_entry(f.cache_key(1))[1]
        assert remaining is not None, "SimpleCache.lookup_entry knows the lifetime"
        assert 0 < remaining <= 5

    @pytest.mark.parametrize(
        ("tiers", "name"),
        [
            (lambda: [SimpleCache(), SimpleCache()], "SimpleCache"),
            (
                lambda: [TierSpecOf(SimpleCache(), name="a"), TierSpecOf(SimpleCache(), name="a")],
                "a",
            ),
        ],
        ids=["by-class", "by-name"],
    )
    def test_two_tiers_with_one_name_are_a_value_error(self, tiers: Any, name: str) -> None:
        with pytest.raises(ValueError, match=rf"two tiers are named '{name}'"):
            CacheStack.from_tiers(tiers())

    def test_no_tier_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="at least one tier"):
            CacheStack.from_tiers([])

    def test_close_closes_every_backend_even_when_one_fails(self) -> None:
        closed: list[str] = []
        stack = CacheStack.from_tiers(
            [
                TierSpecOf(Closing(closed, "first", fail=True), name="first"),
                TierSpecOf(Closing(closed, "second"), name="second"),
            ]
        )
        stack.close()
        assert closed == ["first", "second"]

    def test_close_of_a_configured_stack_closes_its_backends(
        self, monkeypatch: pytest.MonkeyPatch, three_tiers: CacheStack
    ) -> None:
        closed: list[str] = []
        for tier in [*three_tiers.tiers, three_tiers.local_cache_no_serializer]:
            backend: Backend = tier.cache
            monkeypatch.setattr(backend, "close", lambda name=tier.name: closed.append(name))
        three_tiers.close()
        assert sorted(closed) == sorted([*TIER_NAMES, "local_no_serializer"])

    def test_closing_an_unconfigured_stack_does_nothing(self) -> None:
        stack = CacheStack()
        stack.close()
        assert repr(stack) == "<CacheStack (not configured yet)>"
