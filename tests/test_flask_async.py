"""Async views through ``stratacache.flask``: what Flask runs with ``app.ensure_sync``.

Flask runs an ``async def`` view in an event loop of its own per request (asgiref's
``async_to_sync``). A view cached with ``cache.cached()`` or ``cached_for``, and a function
memoized with ``cache.memoize()``, are served there by the same keys and rules as their
``def`` twins, against a real redis-server, and leave no connection behind per loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from flask import Flask, abort, request

from stratacache import CacheStack, cached_for
from stratacache.flask import Cache

from .redis_server import RedisServer
from .test_flask import CountingCache

Stats = dict[str, Any]


def redis_app(url: str, prefix: str = "t:", *, stack: CacheStack | None = None) -> Cache:
    """A Flask app on a local SimpleCache layer in front of RedisCache at ``url``."""
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=url, CACHE_KEY_PREFIX=prefix)
    return Cache(app, stack=stack if stack is not None else CacheStack())


def client_of(cache: Cache) -> Any:
    assert cache.app is not None
    return cache.app.test_client()


def counting(cache: Cache, calls: Counter[str], *, is_async: bool) -> Callable[..., Any]:
    """The view /items, cached, as a ``def`` or an ``async def``; it counts its runs."""

    def body() -> Any:
        calls["items"] += 1
        return flask.jsonify(call=calls["items"], args=sorted(request.args.items(multi=True)))

    async def async_items() -> Any:
        await asyncio.sleep(0)
        return body()

    def items() -> Any:
        return body()

    assert cache.app is not None
    view = cache.cached(timeout=60)(async_items if is_async else items)
    cache.app.add_url_rule("/items", "items", view, methods=["GET", "POST"])
    return view


def without_time(stats: Stats) -> Stats:
    """The counters of ``stats()``, without the measured seconds."""
    return {
        "layers": stats["layers"],
        "functions": {
            name.rpartition(".")[2]: {k: v for k, v in counts.items() if k != "compute_seconds"}
            for name, counts in stats["functions"].items()
        },
    }


# -- cached views ------------------------------------------------------------------------


def test_an_async_view_is_cached_and_stays_a_coroutine_function(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    view = counting(cache, calls, is_async=True)
    client = client_of(cache)

    bodies = [client.get("/items").json for _ in range(3)]

    assert inspect.iscoroutinefunction(view)  # so Flask runs it with ensure_sync
    assert bodies == [{"call": 1, "args": []}] * 3
    assert calls["items"] == 1
    assert cache.stack.local_cache.cache.has("view//items")
    assert cache.stack.shared_cache.cache.has("view//items")


def test_an_async_view_has_the_keys_stats_and_rules_of_a_def_view(
    redis_url: str, redis_server: RedisServer
) -> None:
    seen: dict[bool, tuple[list[Any], Counter[str], Stats]] = {}
    for is_async in (False, True):
        cache, calls = redis_app(redis_url, f"{is_async}:"), Counter[str]()
        view = counting(cache, calls, is_async=is_async)
        client = client_of(cache)
        answers = [
            client.get("/items").json,  # a miss
            client.get("/items").json,  # a local hit
            client.get("/items?b=2&a=1").json,  # its own key
            client.get("/items?a=1&b=2").json,  # the same key
            client.post("/items").json,  # never cached
            client.head("/items").status_code,  # cached: the GET's entry
        ]
        with cache.app.test_request_context("/items?a=1"):  # type: ignore[union-attr]
            answers.append(view.make_cache_key(use_request=True))
        seen[is_async] = answers, calls, without_time(cache.stack.stats())

    assert seen[True] == seen[False]
    assert seen[True][1] == {"items": 3}
    assert seen[True][0][-1] == "view//items?a=1"
    keys = {k.decode() for k in redis_server.client().scan_iter()}
    assert {k.removeprefix("True:") for k in keys if k.startswith("True:")} == {
        k.removeprefix("False:") for k in keys if k.startswith("False:")
    }


def test_a_second_app_on_the_same_redis_gets_a_shared_hit(redis_url: str) -> None:
    calls: Counter[str] = Counter()
    caches = [redis_app(redis_url) for _ in range(2)]
    for cache in caches:
        counting(cache, calls, is_async=True)

    assert client_of(caches[0]).get("/items").json == {"call": 1, "args": []}
    second = caches[1].stack
    # The write's invalidation reaches the second app first: a drop arriving during its
    # read would, rightly, keep the value it read out of its local tier.
    receiver = second._layers().coherence
    deadline = time.monotonic() + 5
    while receiver is not None and receiver.received < 1:
        assert time.monotonic() < deadline, "the first app's write never reached it"
        time.sleep(0.001)
    assert client_of(caches[1]).get("/items").json == {"call": 1, "args": []}

    assert calls["items"] == 1
    assert second.stats()["layers"]["shared"]["hits"] == 1  # served by the first's write
    assert second.local_cache.cache.has("view//items")  # and backfilled the local layer


def test_delete_cached_invalidates_an_async_view(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    view = counting(cache, calls, is_async=True)
    client = client_of(cache)
    client.get("/items?q=1")

    with cache.app.test_request_context():  # type: ignore[union-attr]
        assert cache.delete_cached(view, path="/items", query_args="q=1") is True

    assert client.get("/items?q=1").json == {"call": 2, "args": [["q", "1"]]}


def test_an_async_view_caches_no_exception_and_no_none(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    assert cache.app is not None

    @cache.app.route("/flaky")
    @cache.cached(timeout=60)
    async def flaky() -> str | None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            abort(404)
        return None if calls["flaky"] == 2 else "ok"

    client = client_of(cache)
    # An exception, then None (Flask answers it with a 500): neither is cached.
    assert [client.get("/flaky").status_code for _ in range(2)] == [404, 500]
    assert [client.get("/flaky").text for _ in range(2)] == ["ok", "ok"]
    assert calls["flaky"] == 3


def test_cached_for_on_an_async_view(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    assert cache.app is not None

    @cache.app.route("/hello/<name>")
    @cached_for(minutes=1, stack=cache.stack)
    async def hello(name: str) -> dict[str, Any]:
        calls[name] += 1
        return {"hello": name}

    client = client_of(cache)
    answers = [client.get(path).json for path in ("/hello/ann", "/hello/ann", "/hello/bo")]

    assert answers == [{"hello": "ann"}, {"hello": "ann"}, {"hello": "bo"}]
    assert calls == {"ann": 1, "bo": 1}
    counts = without_time(cache.stack.stats())["functions"]["hello"]
    assert (counts["local_hits"], counts["misses"], counts["computations"]) == (1, 2, 2)


# -- memoized async functions ------------------------------------------------------------


def memoized_pair(cache: Cache, calls: Counter[str]) -> tuple[Any, Any]:
    """The same memoized function, as a ``def`` and as an ``async def``."""

    @cache.memoize(60)
    def square(x: int) -> int | None:
        calls["square"] += 1
        return None if x == 0 else x * x

    @cache.memoize(60)
    async def asquare(x: int) -> int | None:
        await asyncio.sleep(0)
        calls["asquare"] += 1
        return None if x == 0 else x * x

    return square, asquare


def test_an_async_memoized_function_has_the_stats_and_keys_of_a_def_one(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    square, asquare = memoized_pair(cache, calls)
    assert cache.app is not None

    @cache.app.get("/squares")
    async def squares() -> dict[str, Any]:
        return {"squares": [await asquare(x) for x in (2, 2, 3, 0, 0)]}

    assert inspect.iscoroutinefunction(asquare)
    assert client_of(cache).get("/squares").json == {"squares": [4, 4, 9, None, None]}
    assert [square(x) for x in (2, 2, 3, 0, 0)] == [4, 4, 9, None, None]

    assert calls == {"square": 3, "asquare": 3}  # None is cached, as any value
    functions = without_time(cache.stack.stats())["functions"]
    assert functions["asquare"] == functions["square"]
    assert asquare.cache_key(2).replace("asquare", "square") == square.cache_key(2)
    assert asquare.make_cache_key(asquare.uncached, 2) == asquare.cache_key(2)


def test_an_async_memoized_function_never_caches_an_exception(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()

    @cache.memoize(60)
    async def fetch(x: int) -> int:
        calls["fetch"] += 1
        if calls["fetch"] == 1:
            raise ValueError("the upstream failed")
        return x

    with pytest.raises(ValueError, match="upstream"):
        asyncio.run(fetch(1))
    assert [asyncio.run(fetch(1)) for _ in range(2)] == [1, 1]
    assert calls["fetch"] == 2


def test_an_async_memoized_function_is_invalidated_awaited_or_by_delete_memoized(
    redis_url: str,
) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()
    _, asquare = memoized_pair(cache, calls)

    async def twice(x: int) -> list[int]:
        return [await asquare(x), await asquare(x)]

    assert asyncio.run(twice(2)) == [4, 4]
    assert asyncio.run(asquare.invalidate(2)) is True  # a coroutine, in async code
    assert asyncio.run(twice(2)) == [4, 4]
    cache.delete_memoized(asquare, 2)  # synchronous, as in Flask-Caching
    asquare.delete_memoized(3)
    assert asyncio.run(twice(2)) == [4, 4]
    cache.delete_memoized(asquare)  # every entry
    assert not cache.stack.shared_cache.cache.has(asquare.cache_key(2))
    assert asyncio.run(twice(2)) == [4, 4]
    assert calls["asquare"] == 4


def test_an_async_memoized_method_binds_and_is_deleted_per_instance(redis_url: str) -> None:
    cache, calls = redis_app(redis_url), Counter[str]()

    @dataclass
    class Wallet:
        owner: str

        def __cache_key__(self) -> str:
            return self.owner

        @cache.memoize(timeout=60)
        async def balance(self) -> int:
            calls[self.owner] += 1
            return len(self.owner)

    first, second = Wallet("ann"), Wallet("bob")

    async def balances() -> list[int]:
        return [await first.balance(), await second.balance()]

    assert asyncio.run(balances()) == [3, 3]
    cache.delete_memoized(Wallet.balance, first)
    assert asyncio.run(balances()) == [3, 3]
    assert asyncio.run(second.balance.invalidate()) is True  # bound: this instance's entry
    assert asyncio.run(balances()) == [3, 3]
    assert calls == {"ann": 2, "bob": 2}


def test_a_subclass_sees_the_async_decorators_reads_and_writes(redis_url: str) -> None:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url)
    cache, calls = CountingCache(app, stack=CacheStack()), Counter[str]()
    _, asquare = memoized_pair(cache, calls)

    @app.route("/v")
    @cache.cached()
    async def view() -> str:
        return str(await asquare(2))

    client = app.test_client()
    assert [client.get("/v").text for _ in range(2)] == ["4", "4"]
    key = asquare.cache_key(2)
    assert cache.seen == [
        ("get", "view//v"),
        ("get", key),
        ("set", key),
        ("set", "view//v"),
        ("get", "view//v"),
    ]
    cache.delete_memoized(asquare)
    assert not cache.has(key)  # the write was tracked in the function's group


# -- event loops and connections ---------------------------------------------------------


def test_async_views_leave_no_connection_behind_across_event_loops(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()  # its own: only this test's clients are counted
    probe = server.client()
    cache, calls = redis_app(server.url), Counter[str]()
    _, asquare = memoized_pair(cache, calls)
    loops: list[asyncio.AbstractEventLoop] = []
    assert cache.app is not None

    @cache.app.route("/n/<int:n>")
    async def uncached(n: int) -> str:  # its functions are cached
        loops.append(asyncio.get_running_loop())
        return str((await asquare(n % 7) or 0) + await plus_one(n % 5))

    @cache.app.route("/c/<int:n>")
    @cache.cached(timeout=60)
    async def cached(n: int) -> str:
        return str(await plus_one(n))

    @cached_for(minutes=1, stack=cache.stack)
    async def plus_one(x: int) -> int:
        return x + 1

    client = client_of(cache)
    connections, threads = [], []
    for n in range(150):
        # 50 misses, then hits in Redis: the local layer is emptied after every request.
        assert client.get(f"/n/{n % 50}").status_code == 200
        assert client.get(f"/c/{n % 50}").text == str(n % 50 + 1)
        cache.stack.local_cache.cache.clear()
        if n % 10 == 9:
            connections.append(probe.info("clients")["connected_clients"])
            threads.append(threading.active_count())

    assert len({id(loop) for loop in loops}) == len(loops) == 150  # a loop per request
    assert calls["asquare"] == 7  # n % 7 for 0..49: each once (None, for 0, too)
    shared = cache.stack.stats()["layers"]["shared"]
    assert shared["hits"] >= 200  # Redis was read through those loops, again and again
    # The thread path's pool is shared by every loop: bounded, not one connection per loop.
    assert max(connections) <= 4, connections
    assert max(threads) <= threads[0] + 2, threads
