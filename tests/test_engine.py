"""The engine's write rules are one policy: the decorator's paths agree with each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratacache import NO_VALUE, CacheStack, cached_for, engine


@pytest.mark.parametrize("atomic", [None, "at_most_once", "at_least_once"])
def test_a_value_the_shared_tier_cannot_encode_is_computed_once_in_three_calls(
    redis_url: str, atomic: str | None
) -> None:
    # Before the engine, the atomic path skipped the local tier when the shared commit
    # could not serialize the value: 3 runs in 3 calls, against 1 without atomic_writes.
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheAtomic",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_SERIALIZER": "json",
        }
    )
    runs = 0

    @cached_for(minutes=1, stack=stack, atomic_writes=atomic)  # type: ignore[arg-type]
    def tags() -> set[str]:
        nonlocal runs
        runs += 1
        return {"a", "b"}  # JSON has no sets

    assert [tags(), tags(), tags()] == [{"a", "b"}] * 3
    assert runs == 1
    assert stack.shared_cache.cache.lookup(tags.cache_key()) is NO_VALUE  # not encodable
    assert stack.local_cache.cache.lookup(tags.cache_key()) == {"a", "b"}
    assert stack.stats()["functions"][f"{__name__}.{tags.__qualname__}"]["errors"] == 1


def test_writes_go_deepest_first(redis_url: str) -> None:
    order: list[str] = []
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_LAYERS": [
                {"type": "SimpleCache", "name": "memory"},
                {"type": "RedisCache", "name": "redis", "url": redis_url},
            ]
        }
    )
    for tier in stack.tiers:
        backend = tier.cache
        original = backend.set_tracked

        def recording(*args: object, _name: str = tier.name, _set: object = original) -> bool:
            order.append(_name)
            return _set(*args)  # type: ignore[operator, no-any-return]

        backend.set_tracked = recording  # type: ignore[method-assign]

    @cached_for(minutes=1, stack=stack)
    def one() -> int:
        return 1

    one()
    assert order == ["redis", "memory"]


def test_a_cache_layers_stack_reports_its_own_tiers_only(tmp_path: Path) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_LAYERS": [
                {"type": "SimpleCache", "name": "memory"},
                {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path)},
            ]
        }
    )
    assert set(stack.stats()["layers"]) == {"memory", "disk", "local_no_serializer"}


def test_a_counted_route_counts_a_first_tier_hit_once() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    route = stack.route(60, group="views.home")
    engine.write(route, "k", "v")
    for _ in range(3):
        assert engine.read(route, "k") == "v"
    stats = stack.stats()
    assert stats["functions"]["views.home"]["local_hits"] == 3
    assert stats["layers"]["local"]["hits"] == 3


class ArrayLike:
    """A value that compares as numpy arrays do: ``!=`` gives something with no truth value."""

    def __ne__(self, other: object) -> ArrayLike:  # type: ignore[override]
        return self

    def __eq__(self, other: object) -> ArrayLike:  # type: ignore[override]
        return self

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array with more than one element is ambiguous")

    __hash__ = object.__hash__


def test_a_six_item_list_led_by_an_array_is_filled_and_read_like_any_value() -> None:
    # Six items, as a stored envelope has: telling them apart must not compare the first.
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})  # a local tier above a shared one

    @cached_for(minutes=5, stack=stack)
    def split(n: int) -> list[object]:
        return [ArrayLike(), 1, 2, 3, 4, 5]

    key = split.cache_key(1)
    assert len(split(1)) == 6
    stack.local_cache.cache.delete(key)
    assert len(split(1)) == 6, "a shared hit, filled into the local tier"
    assert stack.local_cache.cache.lookup(key) is not NO_VALUE
    assert len(stack.get(key)) == 6
