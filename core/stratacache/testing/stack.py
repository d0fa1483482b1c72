"""The conformance suite of a whole stack: the engine's rules, on any tiers.

Subclass :class:`StackConformance` and give it a ``make_stack`` fixture returning a
configured :class:`~stratacache.CacheStack` of at least two tiers (the seed's stack, a
``CACHE_LAYERS`` list, one built with ``CacheStack.from_tiers``)::

    class TestMyStack(StackConformance):
        @pytest.fixture
        def make_stack(self, tmp_path):
            def make():
                stack = CacheStack()
                stack.configure({"CACHE_LAYERS": [...]})
                return stack
            return make
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from stratacache.backend import NO_VALUE
from stratacache.decorator import cached_for
from stratacache.stack import CacheStack

__all__ = ["StackConformance", "StackFactory"]

StackFactory = Callable[[], CacheStack]
"""Builds a configured stack (called once per test, sometimes twice: two instances)."""


class StackConformance:
    """The read-through rules every stack keeps, whatever its tiers."""

    @pytest.fixture
    def make_stack(self) -> StackFactory:
        """Override: return a callable building the stack under test."""
        raise NotImplementedError("give the suite a make_stack fixture")

    @pytest.fixture
    def stack(self, make_stack: StackFactory) -> CacheStack:
        """A stack to test, emptied first."""
        built = make_stack()
        built.clear()
        return built

    @staticmethod
    def chain(stack: CacheStack) -> list[Any]:
        """The tiers a default function reads, first to deepest."""
        return [t for t in stack.tiers if t.cache.serializes]

    def test_has_at_least_two_tiers(self, stack: CacheStack) -> None:
        assert len(self.chain(stack)) >= 2
        assert stack.shared_cache is self.chain(stack)[-1]

    def test_get_of_a_missing_key_is_the_default(self, stack: CacheStack) -> None:
        assert stack.get("missing") is None
        assert stack.get("missing", NO_VALUE) is NO_VALUE

    def test_set_reaches_every_tier_and_none_is_a_value(self, stack: CacheStack) -> None:
        stack.set("k", None, 60)
        assert stack.get("k", NO_VALUE) is None
        for tier in self.chain(stack):
            assert tier.cache.lookup("k") is None, tier.name

    def test_delete_reaches_every_tier(self, stack: CacheStack) -> None:
        stack.set("k", 1, 60)
        assert stack.delete("k") is True
        for tier in self.chain(stack):
            assert tier.cache.lookup("k") is NO_VALUE, tier.name
        assert stack.delete("k") is False

    def test_a_deeper_hit_fills_the_tiers_above(self, stack: CacheStack) -> None:
        stack.set("k", {"v": 1}, 60)
        for tier in self.chain(stack)[:-1]:
            tier.cache.clear()
        assert stack.get("k") == {"v": 1}
        for tier in self.chain(stack):
            assert tier.cache.lookup("k") == {"v": 1}, tier.name

    def test_a_fill_never_outlives_the_entry_below(self, stack: CacheStack) -> None:
        stack.set("k", "v", 30)
        chain = self.chain(stack)
        _, below = chain[-1].cache.lookup_entry("k")
        for tier in chain[:-1]:
            tier.cache.clear()
        assert stack.get("k") == "v"
        for tier in chain[:-1]:
            value, remaining = tier.cache.lookup_entry("k")
            assert value == "v", tier.name
            if remaining is not None and below is not None:
                assert remaining <= below + 0.01, (tier.name, remaining, below)
                assert not math.isinf(remaining), tier.name

    def test_a_function_computes_once_and_each_tier_serves_it(self, stack: CacheStack) -> None:
        calls = Counter[int]()

        @cached_for(minutes=1, stack=stack)
        def double(x: int) -> int:
            calls[x] += 1
            return 2 * x

        assert [double(2), double(2)] == [4, 4]
        for tier in self.chain(stack)[:-1]:
            tier.cache.clear()
        assert double(2) == 4
        assert calls[2] == 1

    def test_invalidate_and_clear_cache_reach_every_tier(self, stack: CacheStack) -> None:
        @cached_for(minutes=1, stack=stack)
        def square(x: int) -> int:
            return x * x

        square(1), square(2)
        assert square.invalidate(1) is True
        for tier in self.chain(stack):
            assert tier.cache.lookup(square.cache_key(1)) is NO_VALUE, tier.name
        assert square.clear_cache() >= len(self.chain(stack))
        for tier in self.chain(stack):
            assert tier.cache.lookup(square.cache_key(2)) is NO_VALUE, tier.name

    def test_a_second_instance_sees_the_deepest_tier(self, make_stack: StackFactory) -> None:
        first, second = make_stack(), make_stack()
        first.clear()
        first.set("shared-k", [1, 2], 60)
        assert second.get("shared-k") == [1, 2]

    def test_statistics_are_kept_per_tier(self, stack: CacheStack) -> None:
        stack.reset_stats()
        stack.set("k", 1, 60)
        self.chain(stack)[0].cache.clear()
        stack.get("k")
        layers = stack.stats()["layers"]
        first, *_, deepest = self.chain(stack)
        assert layers[first.name]["misses"] >= 1
        assert layers[deepest.name]["sets"] >= 1
