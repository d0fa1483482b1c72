"""Keeping values fresh and available: stale-while-revalidate, fail-safe, factory timeouts.

Real time where time is the point (durations of a second or two), real redis-servers, and
real processes for the refresh that must run once across hosts.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack, ComputeTimeout, cached_for
from stratacache.freshness import COMPANION, STALE_COPY_SECONDS, Envelope
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer


def counts(stack: CacheStack, function: Callable[..., Any]) -> dict[str, Any]:
    """The function's non-zero counters (compute time left out)."""
    name = f"{function.__module__}.{function.__qualname__}"
    found = stack.stats()["functions"][name]
    return {k: v for k, v in found.items() if v and k != "compute_seconds"}


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


@pytest.fixture
def two_tiers() -> CacheStack:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    return stack


# -- the envelope ------------------------------------------------------------------------


def test_only_freshness_functions_write_envelopes_and_the_local_value_stays_plain(
    tmp_path: Path,
) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_LAYERS": [
                {"type": "SimpleCache", "name": "memory"},
                {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path)},
            ]
        }
    )

    @cached_for(minutes=10, refresh_after=0.8, stack=stack)
    def fresh(x: int) -> dict[str, int]:
        return {"x": x}

    @cached_for(minutes=10, stack=stack)
    def plain(x: int) -> dict[str, int]:
        return {"x": x}

    fresh(1)
    plain(1)
    local, shared = stack.tier("memory").cache, stack.tier("disk").cache
    assert local.get(fresh.cache_key(1)) == {"x": 1}, "the hot path reads a plain value"
    entry = Envelope.read(local.get(fresh.cache_key(1) + COMPANION))
    assert entry is not None
    assert entry.value == {"x": 1}
    assert entry.created <= entry.soft < entry.hard
    assert entry.hard - entry.soft == pytest.approx(120, abs=0.1)
    assert Envelope.read(shared.get(fresh.cache_key(1))) is not None, "under the key itself"
    assert shared.get(fresh.cache_key(1) + COMPANION) is None
    assert shared.get(plain.cache_key(1)) == {"x": 1}, "other functions store plain values"


def test_invalidate_removes_the_envelopes_too(two_tiers: CacheStack) -> None:
    @cached_for(seconds=1, fail_safe=60, stack=two_tiers)
    def f(x: int) -> int:
        return x

    f(1)
    assert f.invalidate(1)
    assert two_tiers.tier("local").cache.get(f.cache_key(1) + COMPANION) is None
    assert two_tiers.tier("shared").cache.get(f.cache_key(1)) is None


def test_bad_freshness_options_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"refresh_after=1\.5 must be a fraction"):
        cached_for(minutes=1, refresh_after=1.5)
    with pytest.raises(ValueError, match="not both"):
        cached_for(minutes=1, refresh_after=0.5, stale_after=10)
    with pytest.raises(ValueError, match="soft_timeout=2 must be shorter than hard_timeout=1"):
        cached_for(minutes=1, soft_timeout=2, hard_timeout=1)
    with pytest.raises(ValueError, match=r"'at_least_once' cannot be combined.*first write wins"):
        cached_for(minutes=1, fail_safe=60, atomic_writes="at_least_once")
    with pytest.raises(TypeError, match="fail_safe must be a number of seconds"):
        cached_for(minutes=1, fail_safe="1h")  # type: ignore[arg-type]


def test_freshness_needs_a_duration() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_DEFAULT_TIMEOUT": 0})

    @cached_for(refresh_after=0.5, stack=stack)
    def f() -> int:
        return 1

    with pytest.raises(ValueError, match="need a duration, and the function's is 0"):
        f()


# -- stale-while-revalidate --------------------------------------------------------------


def test_a_stale_caller_never_waits_for_the_refresh(two_tiers: CacheStack) -> None:
    refreshing, release = threading.Event(), threading.Event()
    runs: list[int] = []

    @cached_for(seconds=2, refresh_after=0.25, stack=two_tiers)
    def price(item: str) -> int:
        runs.append(1)
        if len(runs) > 1:  # the refresh blocks until the test lets it go
            refreshing.set()
            assert release.wait(10)
        return len(runs)

    assert price("tea") == 1
    time.sleep(0.6)  # stale after 0.5 s
    assert price("tea") == 1, "the stale value, at once"
    assert refreshing.wait(5), "one refresh started in the background"
    assert not release.is_set()
    for _ in range(20):  # while the refresh is blocked, callers keep getting the value
        assert price("tea") == 1
    assert counts(two_tiers, price)["stale_served"] >= 1
    release.set()
    wait_for(lambda: counts(two_tiers, price).get("refreshes") == 1)
    assert price("tea") == 2, "the refreshed value"
    assert len(runs) == 2, "one refresh, however many stale reads"


def test_a_refresh_already_running_is_not_started_twice(two_tiers: CacheStack) -> None:
    release = threading.Event()
    runs: list[int] = []

    @cached_for(seconds=2, stale_after=0.3, stack=two_tiers)
    def f() -> int:
        runs.append(1)
        if len(runs) > 1:
            assert release.wait(10)
        return len(runs)

    f()
    time.sleep(0.4)
    local = two_tiers.tier("local").cache
    for _ in range(5):
        local.delete(f.cache_key())  # every call reads the stale envelope again
        assert f() == 1
    release.set()
    wait_for(lambda: counts(two_tiers, f).get("refreshes") == 1)
    assert len(runs) == 2
    assert counts(two_tiers, f)["stale_served"] == 5


def test_a_full_executor_drops_refreshes_and_counts_them() -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_REFRESH_WORKERS": 1})
    release = threading.Event()

    @cached_for(seconds=2, stale_after=0.3, stack=stack)
    def f(x: int) -> int:
        if f.calls.get(x):  # type: ignore[attr-defined]
            assert release.wait(10)
        f.calls[x] = 1  # type: ignore[attr-defined]
        return x

    f.calls = {}  # type: ignore[attr-defined]
    f(1), f(2)
    time.sleep(0.4)
    assert (f(1), f(2)) == (1, 2), "both served stale; only one refresh fits"
    assert counts(stack, f)["refreshes_dropped"] == 1
    release.set()
    wait_for(lambda: counts(stack, f).get("refreshes") == 1)


REFRESH_PROCESS = """
import sys, threading, time
import redis
from stratacache import CacheStack, cached_for

url, start_at = sys.argv[1], sys.argv[2]
counter = redis.Redis.from_url(url)
stack = CacheStack()
stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": url})

@cached_for(seconds=30, stale_after=3, stack=stack)
def report(day):
    run = counter.incr("runs")
    time.sleep(0.3)
    return run

if start_at == "seed":
    print(report("monday"))
    sys.exit()

seen, slow = [], []
def caller():
    for _ in range(5):
        began = time.monotonic()
        seen.append(report("monday"))
        slow.append(time.monotonic() - began)
        time.sleep(0.05)

time.sleep(max(0.0, float(start_at) - time.time()))
threads = [threading.Thread(target=caller) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
time.sleep(1.0)  # a refresh started here finishes
refreshes = stack.stats()["functions"]["__main__.report"]["refreshes"]
print(refreshes, max(slow), sorted(set(seen)))
"""


def test_exactly_one_refresh_runs_across_two_processes_of_four_threads(
    redis_server: RedisServer, redis_url: str
) -> None:
    counter = redis_server.client()
    env = clean_env(PYTHONPATH=root_pythonpath())
    seed = subprocess.run(
        [sys.executable, "-c", REFRESH_PROCESS, redis_url, "seed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert seed.returncode == 0, seed.stderr
    assert counter.get("runs") == b"1", "the seed computed once"
    start_at = time.time() + 3.2  # both processes call at once, once the entry is stale
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", REFRESH_PROCESS, redis_url, str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    refreshes = [int(out.split()[0]) for out, _ in outputs]
    assert counter.get("runs") == b"2", "the seed, then exactly one refresh across hosts"
    assert sum(refreshes) == 1, refreshes
    assert all(float(out.split()[1]) < 0.25 for out, _ in outputs), "no caller waited 0.3 s"


# -- fail-safe ---------------------------------------------------------------------------


def test_fail_safe_serves_the_last_value_when_the_function_raises_then_propagates(
    two_tiers: CacheStack, caplog: pytest.LogCaptureFixture
) -> None:
    failing = threading.Event()

    @cached_for(seconds=1, fail_safe=timedelta(seconds=2), stack=two_tiers)
    def rates(currency: str) -> float:
        if failing.is_set():
            raise ConnectionError("the rates service is down")
        return 1.08

    assert rates("EUR") == 1.08
    failing.set()
    time.sleep(1.1)  # expired: it computes, which fails
    with caplog.at_level(logging.WARNING, logger="stratacache.decorator"):
        assert rates("EUR") == 1.08
    assert "serving the last good value" in caplog.text
    assert "the rates service is down" in caplog.text
    assert counts(two_tiers, rates)["fail_safe_served"] == 1
    time.sleep(2.1)  # past the expiry plus the fail-safe window
    with pytest.raises(ConnectionError, match="the rates service is down"):
        rates("EUR")


def test_without_a_stale_value_the_exception_propagates(two_tiers: CacheStack) -> None:
    @cached_for(seconds=1, fail_safe=60, stack=two_tiers)
    def f() -> int:
        raise KeyError("nothing yet")

    with pytest.raises(KeyError):
        f()
    assert "fail_safe_served" not in counts(two_tiers, f)


@pytest.mark.parametrize("backend", ["RedisCacheNoExceptions", "RedisCache"])
def test_fail_safe_serves_the_local_value_while_redis_is_down(
    make_redis_server: Callable[[], RedisServer], backend: str
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    # Coherent local tiers flush on a lost channel, fail-safe copies included (see
    # docs/freshness.md): the local fail-safe copy outlives an outage with the channel off.
    stack.configure(
        {"CACHE_TYPE": backend, "CACHE_REDIS_URL": server.url, "CACHE_INVALIDATION": "off"}
    )
    failing = threading.Event()

    @cached_for(seconds=1, fail_safe=30, stack=stack)
    def profile(user: int) -> dict[str, str]:
        if failing.is_set():
            raise ConnectionError("the database is down too")
        return {"name": "ada"}

    assert profile(1) == {"name": "ada"}
    assert Envelope.read(server.client().get(profile.cache_key(1))) is None  # bytes, signed
    server.kill()
    failing.set()
    time.sleep(1.1)
    assert profile(1) == {"name": "ada"}, "from the local tier's envelope"
    assert counts(stack, profile)["fail_safe_served"] == 1
    if backend == "RedisCache":  # its read raised: a miss for the fail-safe read, counted
        assert counts(stack, profile)["errors"] >= 1


# -- factory timeouts --------------------------------------------------------------------


def expired_then_slow(stack: CacheStack, pause: float, **options: Any) -> Callable[[], str]:
    """Cached 1 s with ``options``: "first", then, once expired, "late" after ``pause`` s."""
    slow = threading.Event()

    @cached_for(seconds=1, fail_safe=10, stack=stack, **options)
    def f() -> str:
        if slow.is_set():
            time.sleep(pause)
            return "late"
        return "first"

    assert f() == "first"
    slow.set()
    time.sleep(1.1)
    return f


def test_soft_timeout_serves_the_stale_value_and_stores_the_late_result(
    two_tiers: CacheStack,
) -> None:
    f = expired_then_slow(two_tiers, 0.6, soft_timeout=0.2)
    began = time.monotonic()
    assert f() == "first", "the stale value after the soft timeout"
    assert time.monotonic() - began < 0.5
    assert counts(two_tiers, f)["soft_timeouts"] == 1
    time.sleep(0.7)  # the computation finished in the background and stored its value
    assert f() == "late"
    assert counts(two_tiers, f)["computations"] == 2


def test_hard_timeout_raises_and_the_background_result_is_stored(two_tiers: CacheStack) -> None:
    @cached_for(seconds=30, hard_timeout=0.2, stack=two_tiers)
    def f(x: int) -> int:
        time.sleep(0.6)
        return x * 2

    began = time.monotonic()
    with pytest.raises(ComputeTimeout, match=r"took longer than hard_timeout=0.2s"):
        f(21)
    assert time.monotonic() - began < 0.5
    time.sleep(0.7)
    assert f(21) == 42, "stored by the computation that went on"
    assert counts(two_tiers, f)["hard_timeouts"] == 1
    assert counts(two_tiers, f)["computations"] == 1


def test_a_hard_timeout_with_a_fail_safe_value_serves_it(two_tiers: CacheStack) -> None:
    f = expired_then_slow(two_tiers, 0.5, hard_timeout=0.2)
    assert f() == "first", "a timeout is a failure: the fail-safe value answers it"
    assert counts(two_tiers, f)["hard_timeouts"] == 1
    assert counts(two_tiers, f)["fail_safe_served"] == 1
    time.sleep(1.1)  # the late value was stored, and the short local copy is gone
    assert f() == "late"


def test_early_refresh_refreshes_a_fresh_entry_read_from_a_tier(
    two_tiers: CacheStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratacache import freshness

    runs: list[int] = []

    @cached_for(seconds=30, early_refresh=100.0, stack=two_tiers)
    def f() -> int:
        runs.append(1)
        time.sleep(0.05)
        return len(runs)

    assert f() == 1
    two_tiers.tier("local").cache.delete(f.cache_key())  # the next read opens the envelope
    # -ln(1 - 0.999999999999) = 27.6: 0.05 s x 100 x 27.6 = 138 s early, past the 30 s
    monkeypatch.setattr(freshness.random, "random", lambda: 1.0 - 1e-12)
    assert f() == 1, "still served at once"
    wait_for(lambda: counts(two_tiers, f).get("refreshes") == 1)
    two_tiers.tier("local").cache.delete(f.cache_key())
    monkeypatch.setattr(freshness.random, "random", lambda: 0.0)  # -ln(1) = 0: not early
    assert f() == 2
    assert counts(two_tiers, f)["refreshes"] == 1


# -- async def ---------------------------------------------------------------------------


def test_async_stale_caller_never_waits_and_one_refresh_task_runs(two_tiers: CacheStack) -> None:
    async def scenario() -> None:
        refreshing, release = asyncio.Event(), asyncio.Event()
        runs: list[int] = []

        @cached_for(seconds=2, refresh_after=0.25, stack=two_tiers)
        async def price(item: str) -> int:
            runs.append(1)
            if len(runs) > 1:
                refreshing.set()
                await release.wait()
            return len(runs)

        assert await price("tea") == 1
        await asyncio.sleep(0.6)
        assert await price("tea") == 1
        await asyncio.wait_for(refreshing.wait(), 5)
        for _ in range(10):
            assert await price("tea") == 1
        release.set()
        for _ in range(100):
            if counts(two_tiers, price).get("refreshes") == 1:
                break
            await asyncio.sleep(0.02)
        assert await price("tea") == 2
        assert len(runs) == 2

    asyncio.run(scenario())


def test_async_fail_safe_and_timeouts(two_tiers: CacheStack) -> None:
    async def scenario() -> None:
        mode = {"now": "ok"}

        @cached_for(seconds=1, fail_safe=10, soft_timeout=0.2, stack=two_tiers)
        async def f() -> str:
            if mode["now"] == "fail":
                raise ConnectionError("down")
            if mode["now"] == "slow":
                await asyncio.sleep(0.6)
                return "late"
            return "first"

        @cached_for(seconds=30, hard_timeout=0.2, stack=two_tiers)
        async def g() -> int:
            await asyncio.sleep(0.6)
            return 7

        assert await f() == "first"
        await asyncio.sleep(1.1)
        mode["now"] = "fail"
        assert await f() == "first", "fail-safe"
        await asyncio.sleep(1.1)  # past the short copy kept after serving it
        mode["now"] = "slow"
        assert await f() == "first", "soft timeout"
        await asyncio.sleep(0.7)
        assert await f() == "late", "the background task stored its value"
        with pytest.raises(ComputeTimeout):
            await g()
        await asyncio.sleep(0.7)
        assert await g() == 7

    asyncio.run(scenario())
    f_counts = {k: v for k, v in two_tiers.stats()["functions"].items() if k.endswith(".f")}
    (found,) = f_counts.values()
    assert (found["fail_safe_served"], found["soft_timeouts"]) == (1, 1)


def test_async_refresh_claims_the_redis_lock_and_runs_once(redis_url: str) -> None:
    async def scenario() -> None:
        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": redis_url})
        runs: list[int] = []

        @cached_for(seconds=5, stale_after=0.5, stack=stack)
        async def feed(name: str) -> int:
            runs.append(1)
            await asyncio.sleep(0.2)
            return len(runs)

        assert await feed("news") == 1
        await asyncio.sleep(0.6)
        local = stack.tier("local").cache
        answers = []
        for _ in range(5):  # each call reads Redis's stale envelope again
            local.delete(feed.cache_key("news"))
            local.delete(feed.cache_key("news") + COMPANION)
            answers.append(await feed("news"))
        assert answers == [1] * 5, "served stale, at once"
        for _ in range(100):
            if counts(stack, feed).get("refreshes") == 1:
                break
            await asyncio.sleep(0.02)
        assert await feed("news") == 2
        assert len(runs) == 2
        assert counts(stack, feed)["stale_served"] == 5
        stack.close()

    asyncio.run(scenario())


def test_a_first_tier_outside_the_process_never_hands_out_the_envelope(redis_url: str) -> None:
    stack = CacheStack()
    stack.configure({"CACHE_LAYERS": [{"type": "RedisCache", "name": "redis", "url": redis_url}]})

    @cached_for(minutes=5, refresh_after=0.5, stack=stack)
    def sync_rates(currency: str) -> dict[str, float]:
        return {"USD": 1.08}

    @cached_for(minutes=5, refresh_after=0.5, stack=stack)
    async def async_rates(currency: str) -> dict[str, float]:
        return {"USD": 1.08}

    async def twice() -> list[Any]:
        return [await async_rates("EUR"), await async_rates("EUR")]

    assert [sync_rates("EUR"), sync_rates("EUR")] == [{"USD": 1.08}] * 2
    assert asyncio.run(twice()) == [{"USD": 1.08}] * 2
    for function in (sync_rates, async_rates):
        stored = stack.tier("redis").cache.get(function.cache_key("EUR"))
        assert Envelope.read(stored) is not None, "Redis keeps the envelope"
        assert counts(stack, function)["computations"] == 1
    stack.close()


# -- fail-safe across a lost invalidation channel ----------------------------------------


def channel_state(stack: CacheStack) -> str:
    return stack.stats()["invalidation"]["state"]


def test_fail_safe_copies_outlive_a_lost_channel_but_never_serve_as_hits(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    stack.configure(  # the invalidation channel on, as by default above Redis
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_URL": server.url,
            "CACHE_OPTIONS": {"retry_interval": 0.1},
        }
    )
    failing = threading.Event()
    runs: list[int] = []

    @cached_for(seconds=30, fail_safe=60, stack=stack)
    def profile(user: int) -> str:
        runs.append(user)
        if failing.is_set():
            raise ConnectionError("the database is down too")
        return f"{user}:v{len(runs)}"

    wait_for(lambda: channel_state(stack) == "subscribed")
    assert [profile(1), profile(2)] == ["1:v1", "2:v2"]
    server.kill()
    wait_for(lambda: channel_state(stack) == "lost")
    # Still fresh, but kept through the loss for fail-safe only: the call computes.
    assert profile(2) == "2:v3", "the kept copy is not a hit: the function ran"
    failing.set()
    assert profile(1) == "1:v1", "the fail-safe value: the copy kept through the loss"
    assert runs == [1, 2, 2, 1]
    assert counts(stack, profile)["fail_safe_served"] == 1
    server.start()
    wait_for(lambda: channel_state(stack) == "subscribed")
    assert profile(1) == "1:v1", "kept through the flush on the way back, for fail-safe only"
    assert counts(stack, profile)["fail_safe_served"] == 2
    failing.clear()
    time.sleep(STALE_COPY_SECONDS + 0.1)  # a served fail-safe value is a local copy that long
    assert profile(1) == f"1:v{len(runs)}", "working again: computed, not the kept copy"
    computed = len(runs)
    assert profile(1) == f"1:v{computed}", "and now a local hit"
    assert len(runs) == computed


def test_a_kept_copy_serves_fail_safe_only_within_its_window(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_REDIS_URL": server.url})
    failing = threading.Event()

    @cached_for(seconds=30, fail_safe=0.5, stack=stack)
    def profile(user: int) -> str:
        if failing.is_set():
            raise ConnectionError("the database is down too")
        return "ada"

    wait_for(lambda: channel_state(stack) == "subscribed")
    assert profile(1) == "ada"
    server.kill()
    wait_for(lambda: channel_state(stack) == "lost")
    failing.set()
    assert profile(1) == "ada", "within 0.5 s of the loss: the fail-safe value"
    assert counts(stack, profile)["fail_safe_served"] == 1
    time.sleep(max(0.6, STALE_COPY_SECONDS + 0.1))  # past the window and the served copy
    with pytest.raises(ConnectionError):
        profile(1)  # its window counts from the loss, not from its 30 s expiry


# -- get, set and refresh of a function with freshness options --------------------------

FRESHNESS_OPTIONS = pytest.mark.parametrize(
    "options",
    [{"refresh_after": 0.8}, {"fail_safe": 60}],
    ids=["refresh_after", "fail_safe"],
)


def _instance(url: str) -> CacheStack:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url})
    wait_for(lambda: channel_state(stack) == "subscribed")
    return stack


@FRESHNESS_OPTIONS
def test_get_set_and_refresh_keep_what_another_instance_reads(
    redis_url: str, options: dict[str, float]
) -> None:
    a, b = _instance(redis_url), _instance(redis_url)
    runs: list[int] = []

    def quote(item: int) -> str:
        runs.append(item)
        return f"computed {len(runs)}"

    quote_a = cached_for(minutes=10, stack=a, **options)(quote)
    quote_b = cached_for(minutes=10, stack=b, **options)(quote)
    assert quote_a(1) == "computed 1"
    assert quote_b.get(1) == "computed 1", "the value, not the envelope Redis holds"
    assert quote_b(1) == "computed 1"
    assert quote_b.set("set by b", 1) is True
    wait_for(lambda: quote_a.get(1) == "set by b")
    assert quote_a(1) == "set by b", "read as an envelope by the other instance"
    assert quote_b.refresh(1) == "computed 2"
    wait_for(lambda: quote_a.get(1) == "computed 2")
    assert quote_a(1) == "computed 2"
    assert runs == [1, 1], "no instance recomputed what the other set or refreshed"
    a.close()
    b.close()


@FRESHNESS_OPTIONS
def test_the_stack_get_of_a_function_key_answers_its_value_and_fills_nothing_wrong(
    redis_url: str, options: dict[str, float]
) -> None:
    a, b = _instance(redis_url), _instance(redis_url)

    def quote(item: int) -> str:
        return "computed"

    quote_a = cached_for(minutes=10, stack=a, **options)(quote)
    quote_b = cached_for(minutes=10, stack=b, **options)(quote)
    assert quote_a(1) == "computed"  # Redis holds its envelope
    key = quote_b.cache_key(1)
    assert b.get(key) == "computed", "the value, not the envelope"
    assert asyncio.run(b.aget(key)) == "computed"
    assert b.local_cache.lookup(key) is NO_VALUE, "no envelope copied up as a plain value"
    assert quote_b(1) == "computed"
    a.close()
    b.close()


@FRESHNESS_OPTIONS
def test_async_get_set_and_refresh_keep_what_another_instance_reads(
    redis_url: str, options: dict[str, float]
) -> None:
    runs: list[int] = []

    async def quote(item: int) -> str:
        runs.append(item)
        return f"computed {len(runs)}"

    async def main() -> None:
        a, b = _instance(redis_url), _instance(redis_url)
        quote_a = cached_for(minutes=10, stack=a, **options)(quote)
        quote_b = cached_for(minutes=10, stack=b, **options)(quote)
        assert await quote_a(1) == "computed 1"
        assert await quote_b.get(1) == "computed 1", "the value, not the envelope"
        assert await quote_b(1) == "computed 1"
        assert await quote_b.set("set by b", 1) is True
        deadline = time.monotonic() + 5
        while await quote_a.get(1) != "set by b":
            assert time.monotonic() < deadline, "A never read B's value"
            await asyncio.sleep(0.01)
        assert await quote_a(1) == "set by b"
        assert await quote_b.refresh(1) == "computed 2"
        while await quote_a.get(1) != "computed 2":
            assert time.monotonic() < deadline, "A never read B's refresh"
            await asyncio.sleep(0.01)
        assert await quote_a(1) == "computed 2"
        a.close()
        b.close()

    asyncio.run(main())
    assert runs == [1, 1]


def test_a_set_value_goes_stale_and_is_refreshed_as_a_computed_one(two_tiers: CacheStack) -> None:
    runs: list[int] = []

    @cached_for(seconds=3, refresh_after=0.2, stack=two_tiers)
    def quote(item: int) -> str:
        runs.append(item)
        return f"computed {len(runs)}"

    assert quote.set("set", 1) is True
    assert quote(1) == "set"
    time.sleep(0.7)  # past refresh_after (0.6 s): stale, served once more, refreshed behind
    assert quote(1) == "set"
    wait_for(lambda: quote(1) == "computed 1", seconds=1.5)  # well before its 3 s
    assert runs == [1]


def test_get_never_answers_a_copy_kept_for_fail_safe_only(two_tiers: CacheStack) -> None:
    @cached_for(seconds=1, fail_safe=60, stack=two_tiers)
    def quote(item: int) -> str:
        return "computed"

    assert quote(1) == "computed"
    assert quote.get(1) == "computed"
    time.sleep(1.1)  # past its expiry, within the fail-safe window
    assert quote.get(1) is NO_VALUE
