"""The options of ``cached_for`` that peers' users expect, for def and async def alike.

``key=``, ``ignore=``, ``version=``, ``key_self=``, ``unless=``, ``cache_if=``, the methods
``refresh``/``get``/``set``, ``stratacache.bypass()`` for an application's tests, a fake
clock, the DEBUG lines saying which tier served, and the errors of bad uses, raised at
decoration with what to write instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

import stratacache
from stratacache import NO_VALUE, CacheStack, TierSpecOf, cached_for
from stratacache.testing import FakeClock
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache


def local_stack() -> CacheStack:
    return CacheStack.from_tiers([SimpleCache()])


def function_counts(stack: CacheStack, func: Any) -> dict[str, Any]:
    """The counters of ``func``, the one function decorated on ``stack``."""
    (counts,) = stack.stats()["functions"].values()
    return dict(counts)


# -- key= ----------------------------------------------------------------------------------


def test_a_key_template_replaces_the_argument_part_and_keeps_the_hash_tag() -> None:
    calls: list[Any] = []

    @cached_for(minutes=5, key="{user_id}:{lang}", stack=local_stack())
    def profile(user_id: int, lang: str = "en", *, trace: object = None) -> list[Any]:
        calls.append((user_id, lang))
        return [user_id, lang]

    assert profile.cache_key(42) == "{tests.test_decorator_options." + (
        "test_a_key_template_replaces_the_argument_part_and_keeps_the_hash_tag"
        ".<locals>.profile}:42:en"
    )
    assert profile(42) == profile(42, trace=object()) == profile(user_id=42, lang="en")
    assert calls == [(42, "en")], "trace is not in the template: every trace shares the entry"
    profile(42, "fr")
    assert calls == [(42, "en"), (42, "fr")]


def test_a_key_template_reaches_attributes() -> None:
    class User:
        def __init__(self, ident: int) -> None:
            self.id = ident

    @cached_for(minutes=5, key="{user.id}", stack=local_stack())
    def greeting(user: User) -> str:
        return f"hello {user.id}"

    assert greeting.cache_key(User(7)).endswith(".greeting}:7")
    assert greeting(User(7)) == "hello 7"


def test_a_key_callable_takes_the_arguments_it_names() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, key=lambda order: f"order-{order['id']}", stack=local_stack())
    def total(order: dict[str, int], currency: str = "EUR") -> int:
        calls.append(order["id"])
        return order["id"] * 10

    assert total.cache_key({"id": 3, "rev": 1}).endswith(".total}:order-3")
    assert total({"id": 3, "rev": 1}) == total({"id": 3, "rev": 2}) == 30
    assert calls == [3]


def test_a_key_callable_must_return_a_string() -> None:
    @cached_for(minutes=5, key=lambda x: x, stack=local_stack())
    def double(x: int) -> int:
        return 2 * x

    with pytest.raises(TypeError, match=r"key= returned 3, a int; it must return a str"):
        double(3)


def test_key_options_work_on_async_functions() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, key="{x}", ignore=None, version=3, stack=local_stack())
    async def double(x: int, session: object = None) -> int:
        calls.append(x)
        return 2 * x

    async def main() -> None:
        assert await double(2) == await double(2, session=object()) == 4

    asyncio.run(main())
    assert calls == [2]
    assert double.cache_key(2).endswith(".double}@v3:2")


# -- ignore=, version=, key_self= -----------------------------------------------------------


def test_ignored_arguments_are_left_out_of_the_key() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, ignore=["session"], stack=local_stack())
    def orders(user_id: int, session: object) -> list[int]:
        calls.append(user_id)
        return [user_id]

    assert orders(1, object()) == orders(1, session=object()) == [1]
    assert calls == [1]
    assert orders.cache_key(1, object()).endswith(".orders}(1,)")


def test_bumping_the_version_retires_the_old_entries() -> None:
    stack = local_stack()
    results = iter(["old", "new"])

    def define(version: int) -> Any:
        @cached_for(minutes=5, version=version, stack=stack)
        def motd() -> str:
            return next(results)

        return motd

    assert define(1)() == "old"
    assert define(1)() == "old", "the same version reads the entry"
    assert define(2)() == "new", "the bumped version does not see it"
    assert define(2).cache_key().endswith(".motd}@v2()")


class Account:
    """A plain class: object's repr, no __cache_key__."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.calls = 0

    @cached_for(minutes=5, key_self=lambda self: self.id, stack=local_stack())
    def balance(self, currency: str) -> tuple[int, str]:
        self.calls += 1
        return (self.id, currency)

    @cached_for(minutes=5, key_self=lambda self: self.id, stack=local_stack())
    async def statement(self) -> int:
        self.calls += 1
        return self.id


def test_key_self_keys_a_plain_class_by_the_identity_it_returns() -> None:
    first, same = Account(1), Account(1)
    assert first.balance("EUR") == same.balance("EUR") == (1, "EUR")
    assert (first.calls, same.calls) == (1, 0), "two instances with one id share the entry"
    assert Account(2).balance("EUR") == (2, "EUR")
    assert first.balance.cache_key("EUR") == same.balance.cache_key("EUR")


def test_key_self_on_an_async_method() -> None:
    first, same = Account(5), Account(5)

    async def main() -> None:
        assert await first.statement() == await same.statement() == 5

    asyncio.run(main())
    assert first.calls + same.calls == 1


def test_a_plain_instance_without_key_self_fails_saying_how_to_fix_it() -> None:
    class Repository:
        @cached_for(minutes=5, stack=local_stack())
        def count(self, kind: str) -> int:
            return 0

    with pytest.raises(TypeError) as raised:
        Repository().count("users")
    message = str(raised.value)
    assert "the method tests.test_decorator_options." in message
    assert "Repository.count" in message
    assert "key_self=lambda self: self.id" in message
    assert "__cache_key__" in message
    assert "__caching_id__" in message


def test_flask_cachings_caching_id_keys_an_instance() -> None:
    class Model:
        def __init__(self, ident: int) -> None:
            self.ident = ident

        def __caching_id__(self) -> str:
            return f"model-{self.ident}"

        @cached_for(minutes=5, stack=local_stack())
        def name(self) -> str:
            return f"#{self.ident}"

    assert Model(3).name() == "#3"
    assert "model-3" in Model(3).name.cache_key()
    assert Model(3).name.cache_key() == Model(3).name.cache_key()


# -- unless= and cache_if= --------------------------------------------------------------------


def test_unless_bypasses_reading_and_writing() -> None:
    stack = local_stack()
    calls: list[Any] = []

    @cached_for(minutes=5, unless=lambda fresh: fresh, stack=stack)
    def report(day: int, fresh: bool = False) -> int:
        calls.append((day, fresh))
        return len(calls)

    assert report(1) == 1
    assert report(1, fresh=True) == 2, "unless: the function runs"
    assert report(1, fresh=True) == 3
    assert report(1) == 1, "the entry was neither read nor replaced"
    assert function_counts(stack, report)["bypasses"] == 2


def test_unless_on_an_async_function() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, unless=lambda x: x < 0, stack=local_stack())
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    async def main() -> None:
        assert await square(-2) == await square(-2) == 4
        assert await square(3) == await square(3) == 9

    asyncio.run(main())
    assert calls == [-2, -2, 3]


def test_cache_if_refuses_results_it_rejects() -> None:
    stack = local_stack()
    answers = iter([None, [], [1]])

    @cached_for(minutes=5, cache_if=bool, stack=stack)
    def search(query: str) -> list[int] | None:
        return next(answers)

    assert search("q") is None
    assert search("q") == [], "None was not cached: the function ran again"
    assert search("q") == [1]
    assert search("q") == [1], "the first result it accepts is cached"
    counts = function_counts(stack, search)
    assert counts["not_cached"] == 2
    assert counts["computations"] == 3


def test_cache_if_on_an_async_function_with_redis(redis_url: str) -> None:
    stack = CacheStack.from_tiers([SimpleCache(), RedisCache(url=redis_url, key_prefix="ci_")])
    answers = iter([None, 5])

    @cached_for(minutes=5, cache_if=lambda result: result is not None, stack=stack)
    async def lookup(x: int) -> int | None:
        return next(answers)

    async def main() -> None:
        assert await lookup(1) is None
        assert await lookup(1) == 5
        assert await lookup(1) == 5

    asyncio.run(main())
    assert stack.tier("RedisCache").cache.get(lookup.cache_key(1)) == 5


# -- refresh, get, set ---------------------------------------------------------------------


def test_refresh_get_and_set_across_both_tiers(redis_url: str) -> None:
    stack = CacheStack.from_tiers(
        [SimpleCache(), RedisCache(url=redis_url, key_prefix=f"rgs{id(object())}_")]
    )
    values = iter(range(100))

    @cached_for(minutes=5, stack=stack)
    def counter(name: str) -> int:
        return next(values)

    assert counter.get("a") is NO_VALUE
    assert counter("a") == 0
    assert counter.get("a") == 0
    assert counter.refresh("a") == 1, "refresh runs the function"
    assert counter("a") == 1
    assert counter.set(42, "a") is True
    assert counter("a") == 42
    assert stack.tier("RedisCache").cache.get(counter.cache_key("a")) == 42
    assert function_counts(stack, counter)["manual_refreshes"] == 1


def test_refresh_get_and_set_are_coroutines_on_async_functions(redis_url: str) -> None:
    stack = CacheStack.from_tiers([SimpleCache(), RedisCache(url=redis_url, key_prefix="arg_")])
    values = iter(range(100))

    @cached_for(minutes=5, stack=stack)
    async def counter(name: str) -> int:
        return next(values)

    async def main() -> None:
        await counter.clear_cache()
        assert await counter.get("a") is NO_VALUE
        assert await counter("a") == 0
        assert await counter.refresh("a") == 1
        assert await counter.get("a") == 1
        assert await counter.set(7, "a") is True
        assert await counter("a") == 7

    asyncio.run(main())


def test_bound_methods_refresh_get_and_set_for_their_instance() -> None:
    account = Account(9)
    assert account.balance.get("USD") is NO_VALUE
    assert account.balance.set((0, "x"), "USD") is True
    assert account.balance("USD") == (0, "x")
    assert account.balance.refresh("USD") == (9, "USD")
    assert account.balance.get("USD") == (9, "USD")


def test_set_wins_over_a_computation_already_running() -> None:
    started, release = threading.Event(), threading.Event()

    @cached_for(minutes=5, stack=local_stack())
    def slow(x: int) -> str:
        started.set()
        release.wait(5)
        return "computed"

    worker = threading.Thread(target=slow, args=(1,))
    worker.start()
    assert started.wait(5)
    slow.set("set by hand", 1)
    release.set()
    worker.join()
    assert slow(1) == "set by hand"


# -- bypass() ------------------------------------------------------------------------------


def test_bypass_runs_every_decorated_function_uncached_in_its_block() -> None:
    calls: list[int] = []

    @cached_for(minutes=5, stack=local_stack())
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    square(2)
    with stratacache.bypass():
        assert square(2) == square(2) == 4
        assert square.get(2) is NO_VALUE, "no tier is read"
        assert square.set(5, 2) is False, "nor written"
        assert square.refresh(2) == 4
    assert calls == [2, 2, 2, 2]
    assert square(2) == 4
    assert calls == [2, 2, 2, 2], "after the block the entry is read again"


def test_bypass_is_scoped_to_its_thread() -> None:
    calls: list[str] = []
    inside, done = threading.Event(), threading.Event()

    @cached_for(minutes=5, stack=local_stack())
    def who(x: int) -> int:
        calls.append(threading.current_thread().name)
        return x

    who(1)

    def bypassing() -> None:
        with stratacache.bypass():
            who(1)
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=bypassing, name="bypassing")
    thread.start()
    assert inside.wait(5)
    assert who(1) == 1, "this thread is outside the block: a hit"
    done.set()
    thread.join()
    assert calls == ["MainThread", "bypassing"]


def test_bypass_is_scoped_to_its_asyncio_task() -> None:
    calls: list[str] = []

    @cached_for(minutes=5, ignore=["caller"], stack=local_stack())
    async def which(x: int, caller: str) -> int:
        calls.append(caller)
        return x

    async def bypassed() -> None:
        with stratacache.bypass():
            await which(1, "bypassed")
            await asyncio.sleep(0.01)  # the other task runs while this block is open
            await which(1, "bypassed")

    async def cached() -> None:
        await asyncio.sleep(0)
        await which(1, "cached")

    async def main() -> None:
        await which(1, "first")
        await asyncio.gather(asyncio.create_task(bypassed()), asyncio.create_task(cached()))

    asyncio.run(main())
    assert calls == ["first", "bypassed", "bypassed"]


# -- a fake clock --------------------------------------------------------------------------


def test_a_fake_clock_drives_expiry_without_sleeping() -> None:
    clock = FakeClock()
    stack = CacheStack.from_tiers([TierSpecOf(SimpleCache(clock=clock), name="memory")])
    values = iter(range(10))

    @cached_for(seconds=30, stack=stack)
    def tick() -> int:
        return next(values)

    assert tick() == 0
    clock.advance(29)
    assert tick() == 0
    clock.advance(2)
    assert tick() == 1, "past 30 seconds the entry expired"


# -- DEBUG lines ---------------------------------------------------------------------------


def test_debug_lines_say_which_tier_served(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="stratacache.engine")
    stack = CacheStack.from_tiers(
        [
            TierSpecOf(SimpleCache(), name="memory"),
            TierSpecOf(RedisCache(url=redis_url, key_prefix="dbg_"), name="redis"),
        ]
    )

    @cached_for(minutes=5, stack=stack)
    def rate(currency: str) -> float:
        return 1.5

    rate.clear_cache()
    rate("EUR")
    stack.tier("memory").cache.clear()
    rate("EUR")
    rate("EUR")
    lines = [r.getMessage() for r in caplog.records if r.name == "stratacache.engine"]
    key = rate.cache_key("EUR")
    assert lines == [
        f"miss {key} in tier 'memory' ({rate.cache_key.__self__.group})",
        f"miss {key} in every tier ({rate.cache_key.__self__.group})",
        f"miss {key} in tier 'memory' ({rate.cache_key.__self__.group})",
        f"hit {key} in tier 'redis' ({rate.cache_key.__self__.group})",
        f"hit {key} in tier 'memory' ({rate.cache_key.__self__.group})",
    ]


def test_without_debug_the_first_tier_is_read_directly() -> None:
    stack = local_stack()

    @cached_for(minutes=5, stack=stack)
    def rate(currency: str) -> float:
        return 1.5

    rate("EUR")
    route = rate.cache_key.__self__.route
    assert route.debug is False
    backend = stack.tiers[0].cache
    assert route.lookup is backend.compiled_lookup(), "the backend's own compiled lookup"


# -- bad uses: errors at decoration --------------------------------------------------------


def decorate(func: Callable[..., Any], **options: Any) -> Any:
    return cached_for(minutes=1, stack=local_stack(), **options)(func)


def fetch(user_id: int, lang: str = "en", session: object = None) -> None:
    """A function to decorate badly."""


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"tags": ["user:{usr_id}"]},
            ValueError,
            "tags template 'user:{usr_id}' names 'usr_id', which is not a parameter of the"
            " function (did you mean 'user_id'?); its parameters: user_id, lang, session",
        ),
        (
            {"key": "all"},
            ValueError,
            "key template 'all' names no argument, so every call would share one entry",
        ),
        (
            {"key": "{user}"},
            ValueError,
            "key template '{user}' names 'user', which is not a parameter",
        ),
        ({"key": "{}"}, ValueError, "has a positional field {}"),
        (
            {"ignore": ["sesion"]},
            ValueError,
            "ignore names 'sesion', which is not a parameter of the function (did you mean"
            " 'session'?)",
        ),
        ({"ignore": "session"}, TypeError, "ignore must be a list of parameter names"),
        (
            {"key": "{user_id}", "ignore": ["session"]},
            ValueError,
            "replaces the whole argument part of the key, so ignore=['session'] has nothing",
        ),
        (
            {"key": "{user_id}", "key_self": lambda self: 1},
            ValueError,
            "key_self has no effect",
        ),
        ({"key_self": lambda self: 1}, ValueError, "key_self is for methods"),
        ({"unless": True}, TypeError, "unless must be a callable over the function's"),
        (
            {"unless": lambda user: user},
            ValueError,
            "takes 'user', which is not a parameter of the function",
        ),
        ({"cache_if": "yes"}, TypeError, "cache_if must be a predicate on the result"),
        ({"version": ""}, TypeError, "version must be an int or a non-empty string"),
        ({"tags": "user:{user_id}"}, TypeError, "tags must be a list of non-empty tag"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_uses_fail_at_decoration(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        decorate(fetch, **options)
    assert message in str(raised.value)


def test_key_self_with_ignore_self_contradicts() -> None:
    def method(self: object, x: int) -> None:
        """A method's function."""

    with pytest.raises(ValueError, match=r"ignore=\['self'\] leaves the instance out"):
        decorate(method, key_self=lambda self: 1, ignore=["self"])


def test_cache_if_and_tags_hold_with_freshness_options() -> None:
    stack = local_stack()
    answers = iter([None, 5, 6])

    @cached_for(
        minutes=5,
        refresh_after=0.8,
        cache_if=lambda result: result is not None,
        tags=["item:{x}"],
        stack=stack,
    )
    def item(x: int) -> int | None:
        return next(answers)

    assert item(1) is None
    assert item(1) == 5, "None was not kept"
    assert item(1) == 5
    assert stack.invalidate_tags("item:1") >= 1
    assert item(1) == 6, "the tag removed the fresh entry"
