"""Issue 11, the Redis items: huge integers (2), skewed clocks (8), the prefix boundary (13),
dead tracking members (14) and one oversized value (16).

Every test runs real redis-server processes: the session's server, or dedicated ones where a
test changes the server's configuration (``CONFIG SET proto-max-bulk-len``, ``maxmemory``).
Each records its figures as scenario ``100 + item`` (``figures.record``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from stratacache import (
    CacheStack,
    DeserializationError,
    cached_for,
    hookimpl,
    plugin_manager,
)
from stratacache.cli import EXIT_OK, main
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheError
from tests.redis_server import RedisServer

from .figures import record

PREFIX = "hard_"
STRICT, LENIENT, ATOMIC = "RedisCache", "RedisCacheNoExceptions", "RedisCacheAtomic"
BACKENDS = (STRICT, LENIENT, ATOMIC)


def redis_stack(url: str, cache_type: str, **settings: Any) -> CacheStack:
    """A stack on ``url`` with the ``hard_`` prefix; ``settings`` adds or overrides keys."""
    stack = CacheStack()
    stack.configure(
        {"CACHE_TYPE": cache_type, "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": PREFIX, **settings}
    )
    return stack


def shared(stack: CacheStack) -> RedisCache:
    """The stack's Redis backend."""
    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCache)
    return backend


@pytest.fixture
def raw(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the session's server, emptied before the test."""
    with redis_server.client() as client:
        yield client


# -- 11.2: integers over 4,300 digits ------------------------------------------------------

HUGE = 10**5000  # str() refuses it: more than sys.get_int_max_str_digits() (4300)


class Broken:
    """A serializer that breaks the contract: it raises RuntimeError, not (De)SerializationError."""

    def dumps(self, value: Any) -> bytes:
        raise RuntimeError("dumps broke")

    def loads(self, data: bytes) -> Any:
        raise RuntimeError("loads broke")


def huge_on(stack: CacheStack, calls: list[int]) -> Callable[[int], int]:
    """A function on ``stack`` returning ``HUGE + n``; ``calls`` records its computations."""

    @cached_for(minutes=5, stack=stack)
    def huge(n: int) -> int:
        calls.append(n)
        return HUGE + n

    return huge


def test_2_huge_integers_are_cached_and_unreadable_digits_are_corrupt(
    raw: redis.Redis, redis_url: str
) -> None:
    table: list[dict[str, Any]] = []
    for cache_type in BACKENDS:
        raw.flushdb()
        stack = redis_stack(redis_url, cache_type)
        backend = shared(stack)
        calls: list[int] = []
        huge = huge_on(stack, calls)
        assert huge(1) == HUGE + 1
        stack.local_cache.cache.clear()
        assert huge(1) == HUGE + 1, "read back from Redis"
        assert calls == [1], "the second call is a shared hit"

        # A counter is still digits, so INCRBY counts with it.
        assert backend.set("n", 41) is True
        assert raw.get(PREFIX + "n") == b"41"
        assert backend.inc("n") == 42

        # Digits that int() refuses (another client wrote them): a corrupt entry.
        raw.set(PREFIX + "planted", b"9" * 5000, px=60_000)
        if cache_type == STRICT:
            with pytest.raises(DeserializationError, match="5000-digit integer"):
                backend.get("planted")
            outcome = "DeserializationError"
        else:
            assert backend.get("planted") is None
            assert raw.exists(PREFIX + "planted") == 0, "the unreadable entry is deleted"
            outcome = "miss, deleted"
        assert backend.stats.deserialization_failures == 1
        table.append(
            {
                "backend": cache_type,
                "10**5000 + 1": "cached, read back",
                "computations": len(calls),
                "5000 planted digits": outcome,
            }
        )

    # at_most_once: the lock is released whatever happens to the value.
    raw.flushdb()
    stacks = [
        redis_stack(redis_url, ATOMIC, CACHE_ATOMIC_LOCK_TIMEOUT=30, CACHE_ATOMIC_WAIT=5)
        for _ in range(2)
    ]
    computed: list[int] = []

    def once_on(stack: CacheStack) -> Callable[[int], int]:
        @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
        def once(n: int) -> int:
            computed.append(n)
            return HUGE + n

        return once

    first, second = (once_on(stack) for stack in stacks)
    raw.set(PREFIX + first.cache_key(2), b"9" * 5000, px=60_000)  # undecodable, then computed
    assert first(1) == HUGE + 1
    assert first(2) == HUGE + 2
    locks = raw.keys(PREFIX + "__lock__:*")
    started = time.monotonic()
    assert second(1) == HUGE + 1
    assert second(2) == HUGE + 2
    waited = time.monotonic() - started
    assert locks == [], "no at_most_once lock is left behind"
    assert computed == [1, 2], "the other process read both values"
    assert waited < 1.0

    # A serializer that breaks its contract (raises something other than the documented
    # errors) while encoding, or while decoding under the lock: the lock goes all the same.
    atomic = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX, serializer=Broken())
    encoding = atomic.start_computation("enc", 60, None, "at_most_once")
    with pytest.raises(RuntimeError, match="dumps"):
        encoding.commit(object())
    raw.set(PREFIX + "dec", b"\x80 planted", px=60_000)
    with pytest.raises(RuntimeError, match="loads"):
        atomic.start_computation("dec", 60, None, "at_most_once")
    locks += raw.keys(PREFIX + "__lock__:*")
    assert locks == [], "a failed encoding or decoding releases the lock"
    record(
        102,
        "Hardening 11.2: integers over 4,300 digits",
        requirement=(
            "10**5000 is cached and read back by all three backends; stored digits int()"
            " refuses are a corrupt entry (RedisCache raises DeserializationError, the others"
            " delete it and miss); no at_most_once lock is left behind"
        ),
        figures={
            "backends": len(BACKENDS),
            "locks left": len(locks),
            "second process wait (ms)": round(waited * 1000, 1),
        },
        table=table,
    )


# -- 11.16: one oversized value is not an outage -------------------------------------------

BULK_LIMIT = 1024 * 1024  # the smallest proto-max-bulk-len Redis accepts
OVERSIZED = b"x" * (2 * BULK_LIMIT)
READ_WINDOW = 0.4  # the window after the failed write


def healthy_reads(backend: RedisCache) -> tuple[int, int]:
    """Read the healthy key ``witness`` for READ_WINDOW seconds: (reads, hits)."""
    hits = reads = 0
    deadline = time.monotonic() + READ_WINDOW
    while time.monotonic() < deadline:
        reads += 1
        hits += backend.get("witness") == 1
    return reads, hits


def big_on(stack: CacheStack) -> Callable[[int], bytes]:
    """An ``at_most_once`` function on ``stack`` returning a value over the size limit."""

    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    def big(n: int) -> bytes:
        return OVERSIZED + str(n).encode()

    return big


def test_16_one_oversized_value_or_oom_write_is_not_an_outage(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    long_back_off = '{"retry_interval": 5}'  # a back-off would show as misses
    table: list[dict[str, Any]] = []

    def row(cache_type: str, write: str, backend: RedisCache, call: Callable[[], Any]) -> None:
        errors = backend.stats.errors
        result = call()
        reads, hits = healthy_reads(backend)
        table.append(
            {
                "backend": cache_type,
                "write": write,
                "result": result,
                "errors counted": backend.stats.errors - errors,
                "healthy reads": reads,
                "hits": hits,
            }
        )

    with server.client() as admin:
        admin.config_set("proto-max-bulk-len", BULK_LIMIT)
        admin.set(PREFIX + "witness", b"1")
        with pytest.raises(RedisCacheError):
            shared(redis_stack(server.url, STRICT)).set("big", OVERSIZED)
        for cache_type in (LENIENT, ATOMIC):
            stack = redis_stack(server.url, cache_type, CACHE_OPTIONS=long_back_off)
            backend, big = shared(stack), big_on(stack)
            row(cache_type, "set", backend, lambda b=backend: b.set("big", OVERSIZED))
            row(
                cache_type,
                "set_tracked",
                backend,
                lambda b=backend: b.set_tracked("big", OVERSIZED, 60, "g"),
            )
            row(cache_type, "set_many", backend, lambda b=backend: b.set_many({"a": OVERSIZED}))
            row(cache_type, "cached_for call", backend, lambda f=big: f(1) == OVERSIZED + b"1")
            # OOM (maxmemory reached, noeviction): writes are refused, reads are served.
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", 1)
            try:
                row(cache_type, "set under OOM", backend, lambda b=backend: b.set("small", 1))
            finally:
                admin.config_set("maxmemory", 0)
            assert backend.set("small", 2) is True, "writes work again at once"
        locks = admin.keys(PREFIX + "__lock__:*")
        started = time.monotonic()
        other = big_on(redis_stack(server.url, ATOMIC, CACHE_ATOMIC_WAIT=5))
        assert other(1) == OVERSIZED + b"1"
        waited = time.monotonic() - started

    record(
        116,
        "Hardening 11.16: one oversized value or OOM write is not an outage",
        requirement=(
            "after a value over proto-max-bulk-len (1 MiB) or a write refused by OOM, every"
            f" read of a healthy key in the next {READ_WINDOW} s hits; the failed write counts"
            " one error and returns False (a decorated call: its value); RedisCache raises;"
            " an at_most_once commit refused for its size releases its lock"
        ),
        figures={
            "writes": len(table),
            "healthy reads": sum(r["healthy reads"] for r in table),
            "missed": sum(r["healthy reads"] - r["hits"] for r in table),
            "locks left": len(locks),
            "next at_most_once caller wait (ms)": round(waited * 1000, 1),
        },
        table=table,
    )
    assert [r for r in table if r["hits"] != r["healthy reads"]] == [], "no read missed"
    assert [r for r in table if r["errors counted"] != 1] == [], "each failure counts once"
    assert [r["result"] for r in table] == [False, False, [], True, False] * 2
    assert locks == []
    assert waited < 1.0, "nobody waits for a lock held by a refused commit"


# -- 11.14: invalidate removes its tracking member ------------------------------------------

CYCLES = 1_000


class DeleteCounter:
    """A plugin observing every delete, so the tiers go through the operation hooks."""

    def __init__(self) -> None:
        self.deletes = 0

    @hookimpl(wrapper=True)
    def stratacache_delete(self, layer: str, key: str) -> Generator[None, Any, Any]:
        result = yield
        self.deletes += 1
        return result


def test_14_invalidate_leaves_no_dead_tracking_member(
    raw: redis.Redis, redis_url: str, fresh_plugins: None
) -> None:
    table: list[dict[str, Any]] = []
    for path in ("direct", "through a stratacache_delete hook"):
        raw.flushdb()
        counter = DeleteCounter()
        if path != "direct":
            plugin_manager().register(counter, name="delete-counter")
        try:
            stack = redis_stack(redis_url, LENIENT, CACHE_DEFAULT_TIMEOUT=0)  # never expire

            @cached_for(stack=stack)
            def forever(n: int) -> int:
                return n

            started = time.perf_counter()
            for n in range(CYCLES):
                forever(n)
                assert forever.invalidate(n) is True
            cycles = time.perf_counter() - started
            forever(-1)  # one live entry
            [tracking] = raw.scan_iter(match=PREFIX + "{*}:__tracked__")
            members, memory = raw.zcard(tracking), raw.memory_usage(tracking)
            started = time.perf_counter()
            cleared = forever.clear_cache()
            clearing = time.perf_counter() - started
        finally:
            if path != "direct":
                plugin_manager().unregister(name="delete-counter")
        table.append(
            {
                "path": path,
                "write+invalidate cycles": CYCLES,
                "cycle (µs)": round(cycles / CYCLES * 1e6, 1),
                "tracking members left": members,
                "tracking set bytes": memory,
                "clear_cache() (ms)": round(clearing * 1000, 2),
                "cleared": cleared,
                "keys left": raw.dbsize(),
            }
        )
        if path != "direct":  # every tier's delete went through the hook
            assert counter.deletes >= 2 * CYCLES
    record(
        114,
        "Hardening 11.14: invalidate leaves no dead tracking member",
        requirement=(
            f"after {CYCLES:,} write+invalidate cycles of entries that never expire, the"
            " function's tracking set holds only its live entry, directly and through the"
            " delete hook; clear_cache() then deletes it and leaves no key"
        ),
        figures={
            "cycles": CYCLES,
            "dead members": sum(r["tracking members left"] - 1 for r in table),
            "keys left": sum(r["keys left"] for r in table),
        },
        table=table,
    )
    assert [r["tracking members left"] for r in table] == [1, 1], "only the live entry"
    assert [r["cleared"] for r in table] == [2, 2], "the local copy and the shared entry"
    assert [r["keys left"] for r in table] == [0, 0]


# -- 11.8: clear_cache() whatever the clocks of the hosts -----------------------------------

SKEW = 3600.0  # one host's clock is an hour off
ENTRIES = 100


@contextmanager
def clock_off_by(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """This host's wall clock (``time.time``, which the backends read) is ``seconds`` off."""
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() + seconds)
        yield


def test_8_clear_cache_finds_every_entry_whatever_the_hosts_clocks(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table: list[dict[str, Any]] = []
    for skew in (SKEW, -SKEW):
        for writer in ("set_tracked", "at_most_once commit"):
            raw.flushdb()
            on_time = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX)
            skewed = RedisCacheAtomic(url=redis_url, key_prefix=PREFIX)

            def write(backend: RedisCacheAtomic, key: str, how: str = writer) -> None:
                if how == "set_tracked":
                    assert backend.set_tracked(key, 1, 300, "module.f") is True
                else:
                    computation = backend.start_computation(key, 300, "module.f", "at_most_once")
                    computation.commit(1)
                    assert computation.stored

            for n in range(ENTRIES // 2):
                write(on_time, f"before{n}")
            with clock_off_by(monkeypatch, skew):
                write(skewed, "skewed")
            for n in range(ENTRIES // 2):
                write(on_time, f"after{n}")
            cleared = on_time.clear_tracked("module.f")
            left = len(list(raw.scan_iter(match=PREFIX + "*")))
            table.append(
                {
                    "skewed host": f"{skew:+.0f} s",
                    "writes": writer,
                    "entries": ENTRIES + 1,
                    "cleared": cleared,
                    "keys left": left,
                }
            )
    record(
        108,
        "Hardening 11.8: clear_cache() with a host's clock off by an hour",
        requirement=(
            f"{ENTRIES} entries written by hosts on time and one by a host an hour ahead or"
            " behind, through set_tracked and an at_most_once commit: clear_cache() deletes"
            " all of them (tracking is scored on the server's clock)"
        ),
        figures={
            "cases": len(table),
            "entries": sum(r["entries"] for r in table),
            "left behind": sum(r["entries"] - r["cleared"] for r in table),
        },
        table=table,
    )
    assert [r["cleared"] for r in table] == [ENTRIES + 1] * len(table)
    assert [r["keys left"] for r in table] == [0] * len(table)


# -- 11.13: clear --all deletes this application's keys, no other's -------------------------

# Keys of other applications sharing the database (their prefixes: myapp_admin:, myapp2:...).
FOREIGN = {b"myapp_admin:1", b"myapp2:1", b"myapplication", b"myapp", b"other:1"}
# Each configured prefix, and the prefix its keys get: a letter or digit at the end gets ":".
PREFIXES = {"myapp": "myapp:", "myapp_": "myapp_", "myapp:": "myapp:", "": ""}


def test_13_clear_all_matches_the_prefix_up_to_its_boundary(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table: list[dict[str, Any]] = []
    runner = CliRunner()
    for configured, effective in PREFIXES.items():
        raw.flushdb()
        for name in FOREIGN:
            raw.set(name, b"theirs")
        settings = {
            "CACHE_TYPE": LENIENT,
            "CACHE_REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": configured,
        }
        stack = CacheStack()
        stack.configure(settings)

        @cached_for(minutes=5, stack=stack)
        def rate(currency: str) -> float:
            return 1.08

        rate("EUR")
        rate("USD")
        stack.set("plain", 1)
        ours = {name for name in raw.scan_iter() if name not in FOREIGN}
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        result = runner.invoke(main, ["clear", "--all"], input="y\n")
        assert result.exit_code == EXIT_OK, result.output
        survivors = set(raw.scan_iter())
        under = {name for name in FOREIGN if name.startswith(effective.encode())}
        table.append(
            {
                "CACHE_KEY_PREFIX": repr(configured),
                "keys named": f"{effective}..." if effective else "as given",
                "ours": len(ours),
                "others'": len(FOREIGN),
                "others' under the prefix": len(under),
                "others' deleted": len(FOREIGN - survivors),
                "ours left": len(ours & survivors),
                "prompt": result.output.splitlines()[0].replace(redis_url, "<url>"),
            }
        )
        assert survivors == FOREIGN - under, configured
        assert all(name.startswith(effective.encode()) for name in ours)
        entries = len(ours) - 1 + len(under)  # but the tracking set
        assert f"({entries} entries)" in result.output, result.output
    callable_prefix = RedisCache(url=redis_url, key_prefix=lambda: "tenant42")
    assert callable_prefix.key_prefix == "tenant42:"
    record(
        113,
        "Hardening 11.13: clear --all and the prefix boundary",
        requirement=(
            "a prefix ends at a separator (':' is added after a final letter or digit), and"
            " clear --all deletes exactly the keys under it: with 'myapp', none of myapp_admin:,"
            " myapp2:, myapplication, myapp; 'myapp_' and 'myapp:' keep their keys' names;"
            " an empty prefix is the whole database, as the prompt says"
        ),
        figures={
            "prefixes": len(table),
            "others' keys deleted with 'myapp'": table[0]["others' deleted"],
            "ours left": sum(r["ours left"] for r in table),
        },
        table=table,
    )
    assert table[0]["others' deleted"] == 0
