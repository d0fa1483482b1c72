"""The conformance suite of a backend's ``a``-methods, and of a stack under ``async def`` code.

:class:`AsyncBackendConformance` checks the awaitable operations of a backend (see
:mod:`stratacache.asyncbackend`) against the synchronous contract: the same values, misses,
lifetimes and tracking, and a value written by one side is read by the other.
:class:`AsyncStackConformance` checks the engine's rules for an ``async def`` function on a
whole stack: the same as :class:`~stratacache.testing.stack.StackConformance` for sync code.
Each test runs in an event loop of its own (``asyncio.run``), as a service that starts and
stops does, so a client bound to an earlier loop would fail here::

    class TestMyAsyncCache(AsyncBackendConformance):
        @pytest.fixture
        def make_backend(self):
            return lambda **options: MyCache(**options)
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from stratacache.backend import NO_VALUE, Backend
from stratacache.decorator import cached_for
from stratacache.errors import CacheError
from stratacache.stack import CacheStack

__all__ = ["AsyncBackendConformance", "AsyncStackConformance", "run"]

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make()`` returns in a new event loop (``asyncio.run``)."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


class AsyncBackendConformance:
    """The awaitable operations of a backend keep the synchronous contract."""

    @pytest.fixture
    def make_backend(self) -> Callable[..., Backend]:
        """Return a factory of fresh, empty backends (override in the subclass)."""
        raise NotImplementedError("define a make_backend fixture in your test class")

    @pytest.fixture
    def backend(self, make_backend: Callable[..., Backend]) -> Backend:
        """A fresh, empty backend (emptied with ``aclear``: an async-only one has no clear)."""
        built = make_backend()
        run(built.aclear)
        return built

    def test_declares_its_api(self, backend: Backend) -> None:
        assert backend.api in ("sync", "async", "both")

    @pytest.mark.parametrize("value", [None, 0, -7, "text", b"\x00bytes", [1, {"a": (2, 3)}]])
    def test_set_then_lookup(self, backend: Backend, value: Any) -> None:
        async def check() -> Any:
            assert await backend.aset_tracked("k", value, 60, None) is True
            return await backend.alookup("k")

        assert run(check) == value

    def test_miss_is_no_value(self, backend: Backend) -> None:
        assert run(lambda: backend.alookup("absent")) is NO_VALUE
        value, _remaining = run(lambda: backend.alookup_entry("absent"))
        assert value is NO_VALUE

    def test_sync_and_async_see_the_same_entries(self, backend: Backend) -> None:
        """Both sides serve the same entries; an async-only backend's sync side refuses."""
        if backend.api == "async":
            run(lambda: backend.aset_tracked("written-async", [2], 60, "grp"))
            for refused in (lambda: backend.get("written-async"), lambda: backend.set("k", 1)):
                with pytest.raises(CacheError, match="async code only"):
                    refused()
            return
        backend.set("written-sync", {"v": 1}, 60)
        assert run(lambda: backend.alookup("written-sync")) == {"v": 1}
        run(lambda: backend.aset_tracked("written-async", [2], 60, "grp"))
        assert backend.get("written-async") == [2]
        assert backend.clear_tracked("grp") == 1

    def test_lookup_entry_tells_the_remaining_lifetime(self, backend: Backend) -> None:
        run(lambda: backend.aset_tracked("ten", "v", 10, None))
        run(lambda: backend.aset_tracked("forever", "v", 0, None))
        value, remaining = run(lambda: backend.alookup_entry("ten"))
        assert value == "v"
        knows = backend.api != "async" and type(backend).lookup_entry is not Backend.lookup_entry
        if knows:  # the sync side tells the lifetime: the async side must too
            assert remaining is not None
        if remaining is not None:
            assert 0 < remaining <= 10
            assert run(lambda: backend.alookup_entry("forever"))[1] == math.inf

    def test_delete(self, backend: Backend) -> None:
        run(lambda: backend.aset_tracked("k", 1, 60, None))
        assert run(lambda: backend.adelete("k")) is True
        assert run(lambda: backend.adelete("k")) is False
        assert run(lambda: backend.alookup("k")) is NO_VALUE

    def test_tracking_deletes_exactly_the_group(self, backend: Backend) -> None:
        async def fill() -> None:
            for i in range(3):
                assert await backend.aset_tracked(f"f:{i}", i, None, "module.f") is True
            await backend.aset_tracked("g:0", "g", None, "module.g")

        run(fill)
        assert run(lambda: backend.adelete_tracked("f:0", "module.f")) is True
        assert run(lambda: backend.adelete_tracked("f:0", "module.f")) is False
        assert run(lambda: backend.aclear_tracked("module.f")) == 2
        assert run(lambda: backend.alookup("f:1")) is NO_VALUE
        assert run(lambda: backend.alookup("f:2")) is NO_VALUE
        assert run(lambda: backend.alookup("g:0")) == "g"

    def test_clear(self, backend: Backend) -> None:
        run(lambda: backend.aset_tracked("k", 1, 60, None))
        assert run(backend.aclear) is True
        assert run(lambda: backend.alookup("k")) is NO_VALUE

    def test_many_loops_one_after_another(self, backend: Backend) -> None:
        for i in range(5):  # a client bound to a finished loop would fail the next one
            run(lambda i=i: backend.aset_tracked(f"loop:{i}", i, 60, None))  # type: ignore[misc]
            assert run(lambda i=i: backend.alookup(f"loop:{i}")) == i  # type: ignore[misc]

    def test_concurrent_awaits_on_one_loop(self, backend: Backend) -> None:
        async def each(i: int) -> Any:
            await backend.aset_tracked(f"c:{i}", i, 60, "grp")
            return await backend.alookup(f"c:{i}")

        async def many() -> list[Any]:
            return list(await asyncio.gather(*(each(i) for i in range(50))))

        assert run(many) == list(range(50))

    def test_a_coordinated_computation_commits(self, backend: Backend) -> None:
        # The key carries its group's hash tag, as the decorator's keys do (one Cluster slot).
        async def compute() -> Any:
            computation = await backend.astart_computation("{grp}x", 60, "grp", "at_most_once")
            if computation.value is not NO_VALUE:
                return computation.value
            return await computation.acommit({"computed": True})

        assert run(compute) == {"computed": True}
        assert run(lambda: backend.alookup("{grp}x")) == {"computed": True}
        assert run(compute) == {"computed": True}, "a second caller gets the stored value"


class AsyncStackConformance:
    """The engine's rules for ``async def`` functions and ``await cache.a*``, on any stack."""

    @pytest.fixture
    def make_stack(self) -> Callable[[], CacheStack]:
        """Override: return a callable building the stack under test."""
        raise NotImplementedError("give the suite a make_stack fixture")

    @pytest.fixture
    def stack(self, make_stack: Callable[[], CacheStack]) -> CacheStack:
        """A stack to test, emptied first."""
        built = make_stack()
        built.clear()
        return built

    @staticmethod
    def chain(stack: CacheStack) -> list[Any]:
        """The tiers a default function reads, first to deepest."""
        return [t for t in stack.tiers if t.cache.serializes]

    def test_aset_aget_adelete_reach_every_tier(self, stack: CacheStack) -> None:
        run(lambda: stack.aset("k", None, 60))
        assert run(lambda: stack.aget("k", NO_VALUE)) is None
        for tier in self.chain(stack):
            assert tier.cache.lookup("k") is None, tier.name
        assert run(lambda: stack.adelete("k")) is True
        for tier in self.chain(stack):
            assert tier.cache.lookup("k") is NO_VALUE, tier.name
        assert run(lambda: stack.aget("k", "default")) == "default"

    def test_a_deeper_hit_fills_the_tiers_above_for_no_longer(self, stack: CacheStack) -> None:
        stack.set("k", {"v": 1}, 30)
        chain = self.chain(stack)
        for tier in chain[:-1]:
            tier.cache.clear()
        assert run(lambda: stack.aget("k")) == {"v": 1}
        _, below = chain[-1].cache.lookup_entry("k")
        for tier in chain[:-1]:
            value, remaining = tier.cache.lookup_entry("k")
            assert value == {"v": 1}, tier.name
            if remaining is not None and below is not None:
                assert remaining <= below + 0.05, (tier.name, remaining, below)

    def test_a_function_computes_once_none_included(self, stack: CacheStack) -> None:
        calls = Counter[int]()

        @cached_for(minutes=1, stack=stack)
        async def maybe(x: int) -> int | None:
            calls[x] += 1
            return None if x == 0 else x

        async def twice() -> list[int | None]:
            return [await maybe(0), await maybe(0), await maybe(3), await maybe(3)]

        assert run(twice) == [None, None, 3, 3]
        for tier in self.chain(stack)[:-1]:
            tier.cache.clear()
        assert run(lambda: maybe(3)) == 3, "served by the deepest tier"
        assert calls == {0: 1, 3: 1}

    def test_exceptions_are_never_cached(self, stack: CacheStack) -> None:
        calls: list[int] = []

        @cached_for(minutes=1, stack=stack)
        async def fails(x: int) -> int:
            calls.append(x)
            raise ValueError(x)

        for _ in range(2):
            with pytest.raises(ValueError, match="5"):
                run(lambda: fails(5))
        assert calls == [5, 5]

    def test_invalidate_and_clear_cache_reach_every_tier(self, stack: CacheStack) -> None:
        @cached_for(minutes=1, stack=stack)
        async def square(x: int) -> int:
            return x * x

        async def scenario() -> None:
            await square(1)
            await square(2)
            assert await square.invalidate(1) is True
            for tier in self.chain(stack):
                assert tier.cache.lookup(square.cache_key(1)) is NO_VALUE, tier.name
            assert await square.clear_cache() >= len(self.chain(stack))

        run(scenario)
        for tier in self.chain(stack):
            assert tier.cache.lookup(square.cache_key(2)) is NO_VALUE, tier.name

    def test_sync_and_async_functions_share_entries(
        self, make_stack: Callable[[], CacheStack]
    ) -> None:
        first, second = make_stack(), make_stack()  # two instances of one service
        first.clear()
        calls: list[str] = []

        def define(on: CacheStack, *, coroutine: bool) -> Any:
            # One name for both, so one key: the same function in a sync and an async service.
            if coroutine:

                async def f(x: int) -> list[int]:
                    calls.append("async")
                    return [x, 1]

            else:

                def f(x: int) -> list[int]:  # type: ignore[misc]
                    calls.append("sync")
                    return [x, 1]

            return cached_for(minutes=1, stack=on)(f)

        on_async, on_sync = define(first, coroutine=True), define(second, coroutine=False)
        assert run(lambda: on_async(7)) == [7, 1]
        assert on_sync(7) == [7, 1]
        assert calls == ["async"]
        assert on_sync(8) == [8, 1]
        assert run(lambda: on_async(8)) == [8, 1]
        assert calls == ["async", "sync"]
