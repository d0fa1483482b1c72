"""Coherent local tiers on one redis-server: another instance's change reaches this one's
local copy, as one message per change, and never as an echo of its own writes.

Two stacks on one server stand in for two instances (each is its own origin); where the point
is processes (fork, interpreter exit), real processes run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from stratacache import NO_VALUE, CacheStack, ConfigurationError, cached_for
from stratacache_plugins.rediscache.invalidation import CHANNEL_PREFIX, decode
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unsigned pickles

WINDOW = 2.0  # the generous bound the tests assert; the measured latency is printed
LONG = 3600  # a local timeout that, without the channel, would serve a stale copy for an hour


def instance(url: str, **keys: Any) -> CacheStack:
    """One instance: a local tier (long timeout) above the shared Redis tier."""
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": "inv",
            "LOCALCACHE_DEFAULT_TIMEOUT": LONG,
            **keys,
        }
    )
    return stack


def subscribed(stack: CacheStack, timeout: float = WINDOW) -> None:
    """Wait until the stack's channel is subscribed."""
    deadline = time.monotonic() + timeout
    while stack.stats()["invalidation"]["state"] != "subscribed":
        assert time.monotonic() < deadline, stack.stats()["invalidation"]
        time.sleep(0.002)


def gone_within(check: Callable[[], bool], timeout: float = WINDOW) -> float:
    """Poll ``check`` until it is true; return the seconds it took (fail after ``timeout``)."""
    start = time.perf_counter()
    while not check():
        assert time.perf_counter() - start < timeout, "the local copy is still there"
        time.sleep(0.0002)
    return time.perf_counter() - start


def local(stack: CacheStack, key: str) -> Any:
    """What the stack's local tier holds under ``key`` (``NO_VALUE`` if nothing)."""
    return stack.local_cache.cache.lookup(key)


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[CacheStack, CacheStack]]:
    a, b = instance(redis_url), instance(redis_url)
    subscribed(a)
    subscribed(b)
    yield a, b
    a.close()
    b.close()


def priced(stack: CacheStack, prices: dict[int, int]) -> Any:
    """The same function (one group) in one instance."""

    @cached_for(hours=1, stack=stack)
    def price(item: int) -> int:
        return prices[item]

    return price


@pytest.mark.parametrize("change", ["set", "delete", "invalidate", "clear_cache", "clear"])
def test_another_instance_change_drops_the_local_copy(
    pair: tuple[CacheStack, CacheStack], change: str
) -> None:
    a, b = pair
    prices = {42: 1}
    price_a, price_b = priced(a, prices), priced(b, prices)
    assert price_a(42) == 1
    key = next(k for k in _local_keys(a) if "42" in k)
    assert local(a, key) == 1
    prices[42] = 2
    changes: dict[str, Callable[[], object]] = {
        "set": lambda: b.set(key, 2),
        "delete": lambda: b.delete(key),
        "invalidate": lambda: price_b.invalidate(42),
        "clear_cache": price_b.clear_cache,
        "clear": b.clear,
    }
    changes[change]()
    took = gone_within(lambda: local(a, key) is NO_VALUE)
    print(f"{change}: A's copy gone {took * 1000:.2f} ms after B's change returned")
    assert price_a(42) == 2
    assert a.stats()["invalidation"]["received"] >= 1


def _local_keys(stack: CacheStack) -> list[str]:
    cache: Any = stack.local_cache.cache
    return list(cache._cache)


def test_a_group_clear_and_a_full_clear_are_one_message_each(
    pair: tuple[CacheStack, CacheStack], redis_url: str
) -> None:
    a, b = pair
    prices = dict.fromkeys(range(50), 7)
    price_a, price_b = priced(a, prices), priced(b, prices)
    for item in range(50):
        price_a(item)
    messages = _recorder(redis_url)
    price_b.clear_cache()
    gone_within(lambda: not _local_keys(a))
    for item in range(50):
        price_a(item)
    b.clear()
    gone_within(lambda: not _local_keys(a))
    origin = b._layers().coherence.origin  # type: ignore[union-attr]
    from_b = [(m.op, m.group, list(m.keys)) for m in messages() if m.origin == origin]
    assert from_b == [("g", _group(price_b), []), ("a", None, [])]


def _group(function: Any) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _recorder(url: str) -> Callable[[], list[Any]]:
    """Record the messages of the ``inv`` prefix's channel from now on."""
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()
    pubsub.subscribe(f"{CHANNEL_PREFIX}0:inv:")
    while (m := pubsub.get_message(timeout=1)) is None or m["type"] != "subscribe":
        pass

    def messages() -> list[Any]:
        found = []
        while (m := pubsub.get_message(timeout=0.2)) is not None:
            if m["type"] == "message":
                found.append(decode(m["data"]))
        pubsub.close()
        client.close()  # held until now: a collected client closes the pub/sub connection
        return found

    return messages


def test_own_writes_keep_their_fresh_copy(pair: tuple[CacheStack, CacheStack]) -> None:
    a, b = pair
    for n in range(200):
        a.set("mine", n)
    assert local(a, "mine") == 199
    gone_within(lambda: b.stats()["invalidation"]["received"] >= 200)
    time.sleep(0.1)  # time for an echo to arrive, had there been one
    assert local(a, "mine") == 199
    assert a.stats()["invalidation"]["received"] == 0


def test_a_burst_of_foreign_writes_drops_keys_not_everything(
    pair: tuple[CacheStack, CacheStack],
) -> None:
    a, b = pair
    a.set("kept", "yes")
    for n in range(500):
        b.set(f"other{n}", n)
    gone_within(lambda: a.stats()["invalidation"]["received"] >= 500)
    assert local(a, "kept") == "yes"
    assert a.stats()["invalidation"]["flushes_after_loss"] == 0


def test_a_write_is_announced_in_its_own_round_trip(
    pair: tuple[CacheStack, CacheStack], redis_server: RedisServer
) -> None:
    a, _ = pair
    redis_server.reset_stats()
    a.set("k", 1)
    counts = redis_server.command_counts()
    assert counts.get("publish") == 1
    assert counts.get("set") == 1


def test_a_fill_racing_an_invalidation_is_not_kept(pair: tuple[CacheStack, CacheStack]) -> None:
    a, b = pair
    receiver = a._layers().coherence
    assert receiver is not None
    b.set("raced", "old")
    gone_within(lambda: receiver.received >= 1)  # that write's message is applied: not later
    shared: Any = a.shared_cache.cache
    real = shared.lookup_entry

    def slow_lookup(key: str) -> tuple[Any, float | None]:
        found = real(key)
        before = receiver.received
        b.set("raced", "new")  # B's change lands while A's old value is on its way up
        gone_within(lambda: receiver.received > before)
        return found

    shared.lookup_entry = slow_lookup  # type: ignore[method-assign]
    try:
        assert a.get("raced") == "old"  # what it read, once
    finally:
        del shared.lookup_entry
    assert local(a, "raced") is NO_VALUE
    assert a.get("raced") == "new"


@pytest.mark.parametrize(
    "freshness",
    [{"refresh_after": 0.8}, {"fail_safe": 3600}],
    ids=["refresh_after", "fail_safe"],
)
@pytest.mark.parametrize("served", ["fresh", "stale"])
def test_a_fill_racing_an_invalidation_is_not_kept_with_freshness_options(
    pair: tuple[CacheStack, CacheStack], freshness: dict[str, float], served: str
) -> None:
    # The same race as above, on the read path of refresh_after and fail_safe (envelopes),
    # for an entry read while fresh and one read while stale (then kept a moment as such).
    a, b = pair
    receiver = a._layers().coherence
    assert receiver is not None
    timeout = 1 if served == "stale" else 3600  # (cached_for rounds up to whole seconds)
    if served == "stale":
        freshness = {**freshness, "refresh_after": 0.2}
    values = {1: "old"}

    def quote(item: int) -> str:
        return values[item]

    quote_a = cached_for(seconds=timeout, stack=a, **freshness)(quote)
    quote_b = cached_for(seconds=timeout, stack=b, **freshness)(quote)
    assert quote_b(1) == "old"
    gone_within(lambda: receiver.received >= 1)
    if served == "stale":
        time.sleep(0.35)  # past refresh_after * timeout: stale, still alive
    shared: Any = a.shared_cache.cache
    real = shared.lookup_entry

    def slow_lookup(*args: Any) -> tuple[Any, float | None]:
        found = real(*args)
        del shared.lookup_entry  # once: not the refresh that a stale read starts
        before = receiver.received
        values[1] = "new"
        assert quote_b.set("new", 1)  # B's change lands while A's old value is on its way up
        gone_within(lambda: receiver.received > before)
        return found

    shared.lookup_entry = slow_lookup  # type: ignore[method-assign]
    assert quote_a(1) == "old"  # what it read, once
    assert "lookup_entry" not in vars(shared)
    key = quote_a.cache_key(1)
    # (A stale read starts a refresh, which may have stored the new value since.)
    assert local(a, key) in (NO_VALUE, "new"), "the old value was kept above Redis"
    assert quote_a(1) == "new"


def test_a_fail_safe_value_served_after_an_invalidation_is_not_kept(
    pair: tuple[CacheStack, CacheStack],
) -> None:
    # The value a failed computation falls back on was read before B's change reached A:
    # A serves it (its computation failed) but keeps no local copy of it.
    a, b = pair
    receiver = a._layers().coherence
    assert receiver is not None
    failing = [False]

    def quote(item: int) -> str:
        if failing[0]:
            raise ConnectionError("the database is down")
        return "old"

    quote_a = cached_for(seconds=1, fail_safe=3600, stack=a)(quote)
    quote_b = cached_for(seconds=1, fail_safe=3600, stack=b)(quote)
    assert quote_b(1) == "old"
    gone_within(lambda: receiver.received >= 1)
    time.sleep(1.1)  # past its expiry: kept for fail-safe only
    shared: Any = a.shared_cache.cache
    real = shared.lookup_entry

    def slow_lookup(*args: Any) -> tuple[Any, float | None]:
        found = real(*args)
        del shared.lookup_entry
        before = receiver.received
        failing[0] = True
        assert quote_b.set("new", 1)
        gone_within(lambda: receiver.received > before)
        return found

    shared.lookup_entry = slow_lookup  # type: ignore[method-assign]
    assert quote_a(1) == "old", "the fail-safe value of what it read"
    assert local(a, quote_a.cache_key(1)) is NO_VALUE, "no copy of it kept"
    assert quote_a(1) == "new"


def test_invalidation_off_opens_no_channel(redis_url: str, redis_server: RedisServer) -> None:
    stack = instance(redis_url, CACHE_INVALIDATION="off", CACHE_KEY_PREFIX="offapp")
    redis_server.reset_stats()
    stack.set("k", 1)
    stack.clear()
    assert "publish" not in redis_server.command_counts()
    channels = redis_server.client().pubsub_channels(f"{CHANNEL_PREFIX}*offapp*")
    assert channels == []
    assert stack.stats()["invalidation"]["state"] == "off"
    stack.close()


def test_auto_without_a_tier_above_redis_announces_nothing(redis_url: str) -> None:
    stack = CacheStack()
    stack.configure({"CACHE_LAYERS": [{"type": "RedisCache", "url": redis_url}]})
    assert "invalidation" not in stack.stats()
    cache: Any = stack.shared_cache.cache
    assert cache._channel is None
    stack.close()


def test_a_bad_value_is_a_clear_start_up_error(redis_url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        instance(redis_url, CACHE_INVALIDATION="sometimes")
    text = str(raised.value)
    assert "CACHE_INVALIDATION='sometimes'" in text
    assert "'auto', 'on' or 'off'" in text


def test_close_stops_the_listener(make_redis_server: Callable[[], RedisServer]) -> None:
    stack = instance(make_redis_server().url)  # a server of its own: a listener of its own
    subscribed(stack)
    cache: Any = stack.shared_cache.cache
    thread = cache._subscription.listener._thread
    assert thread is not None
    assert thread.daemon  # never holds the interpreter's exit
    assert thread.is_alive()
    stack.close()
    thread.join(WINDOW)
    assert not thread.is_alive()
    assert stack.stats()["invalidation"]["state"] == "off"


def _python(code: str, url: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "URL": url}
    return [sys.executable, "-c", textwrap.dedent(code)], env  # type: ignore[return-value]


def test_a_subscribed_process_exits_promptly(redis_url: str) -> None:
    argv, env = _python(
        """
        import os, time
        from stratacache import CacheStack
        s = CacheStack()
        s.configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["URL"]})
        s.set("k", 1)
        while s.stats()["invalidation"]["state"] != "subscribed":
            time.sleep(0.01)
        print("subscribed", flush=True)
        """,
        redis_url,
    )
    start = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    assert "subscribed" in done.stdout
    assert time.monotonic() - start < 10


def test_a_forked_child_subscribes_again(redis_url: str) -> None:
    argv, env = _python(
        """
        import json, os, time
        from stratacache import NO_VALUE, CacheStack

        def stack():
            s = CacheStack()
            s.configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["URL"],
                         "LOCALCACHE_DEFAULT_TIMEOUT": 3600})
            return s

        def wait(check, timeout=5):
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.0005)
            return True

        parent = stack()
        parent.set("k", "before fork")
        wait(lambda: parent.stats()["invalidation"]["state"] == "subscribed")
        read, write = os.pipe()
        back, ready = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read); os.close(ready)
            ok = wait(lambda: parent.stats()["invalidation"]["state"] == "subscribed")
            cached = parent.get("k") == "before fork"  # its own local copy, after subscribing
            cached = cached and parent.local_cache.cache.lookup("k") == "before fork"
            os.write(write, b"x")  # subscribed: the parent may change the entry
            os.read(back, 1)
            t = time.perf_counter()
            gone = wait(lambda: parent.local_cache.cache.lookup("k") is NO_VALUE)
            took = time.perf_counter() - t
            result = {"subscribed": ok, "cached": cached, "gone": gone,
                      "value": parent.get("k"), "ms": took * 1000}
            os.write(write, json.dumps(result).encode())
            os._exit(0)
        os.close(write); os.close(back)
        os.read(read, 1)
        parent.set("k", "after fork")
        os.write(ready, b"x")
        print(os.read(read, 4096).decode(), flush=True)
        os.waitpid(pid, 0)
        """,
        redis_url,
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"forked child: its copy gone {result['ms']:.2f} ms after the parent's change")
    assert result["subscribed"]
    assert result["cached"]
    assert result["gone"]
    assert result["value"] == "after fork"


def test_async_code_is_served_by_the_same_listener(pair: tuple[CacheStack, CacheStack]) -> None:
    import asyncio

    a, b = pair
    prices = {1: "old"}

    @cached_for(hours=1, stack=a)
    async def quote(item: int) -> str:
        return prices[item]

    assert asyncio.run(quote(1)) == "old"
    key = quote.cache_key(1)
    assert local(a, key) == "old"
    prices[1] = "new"
    asyncio.run(b.aset(key, "new"))
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(quote(1)) == "new"


def test_info_shows_the_channel_and_its_subscribers(
    pair: tuple[CacheStack, CacheStack], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from stratacache.cli import main

    for key, value in {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": "inv",
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["info", "--json"])
    assert result.exit_code == 0, result.output
    shared = json.loads(result.stdout)["layers"]["shared"]
    assert shared["invalidation"] == "auto"
    assert shared["invalidation_channel"] == f"{CHANNEL_PREFIX}0:inv:"
    assert shared["invalidation_subscribers"] >= 1  # this process's one listener connection


def test_prometheus_exports_the_channel(pair: tuple[CacheStack, CacheStack]) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from stratacache_plugins.prometheus import StratacacheCollector

    a, b = pair
    b.set("k", 1)
    gone_within(lambda: a.stats()["invalidation"]["received"] == 1)
    registry = CollectorRegistry()
    registry.register(StratacacheCollector(a))
    text = generate_latest(registry).decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found["stratacache_invalidation_received_total", ()] == 1
    assert found["stratacache_invalidation_keys_dropped_total", ()] == 1
    assert found["stratacache_invalidation_flushes_after_loss_total", ()] == 0
    assert found["stratacache_invalidation_channel", (("state", "subscribed"),)] == 1
    assert found["stratacache_invalidation_channel", (("state", "lost"),)] == 0


def test_an_acl_user_without_the_channel_goes_on_without_it(
    make_redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server()
    server.client().acl_setuser(  # keys and commands, no channel (Redis 7's default)
        "cache-user", enabled=True, passwords=["+s3cret"], keys=["~app:*"], commands=["+@all"]
    )
    stack = instance(
        server.url,
        CACHE_KEY_PREFIX="app",
        CACHE_REDIS_USERNAME="cache-user",
        CACHE_REDIS_PASSWORD="s3cret",
    )
    stack.set("k", 1)  # no PUBLISH refused: the backend no longer announces
    assert stack.get("k") == 1
    assert stack.stats()["invalidation"]["state"] == "off"
    assert "ACL SETUSER <user> &__stratacache__:*" in caplog.text
    stack.close()


def test_a_stack_following_a_closed_one_on_its_channel_misses_nothing(redis_url: str) -> None:
    # The listener unsubscribes a channel whose last stack closed; stacks that subscribe to
    # it afterwards get its messages from the first one on. Another stack keeps the listener
    # itself running. (The race this guards against, a stale confirmation that let the first
    # messages go to nobody, showed in the whole Redis suite: tests/test_redis*.py then this
    # file failed 1 run in 2 before the fix, 0 in 6 after.)
    keeper = instance(redis_url, CACHE_KEY_PREFIX="keeper")
    subscribed(keeper)
    for round_ in range(5):
        a, b = instance(redis_url), instance(redis_url)
        subscribed(a)
        subscribed(b)
        a.set(f"r{round_}", "old")
        receiver = a._layers().coherence
        assert receiver is not None
        before = receiver.received
        b.set(f"r{round_}", "new")
        gone_within(lambda receiver=receiver, before=before: receiver.received > before)
        a.close()
        b.close()
        time.sleep(0.3)  # the listener unsubscribes the channel nobody listens to now
    keeper.close()
