"""Scenarios 4, 5 and 13 of issue 5: unreadable entries, unpicklable values, hostile keys.

Entries are planted with a plain client of a real redis-server (or as files), exactly as a
corrupted store, an older release of the application or a hostile writer would leave them.
Each test records what it measured (``figures.record``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache import NO_VALUE, CacheStack, DeserializationError, SerializationError, cached_for
from stratacache_plugins import rediscache
from tests.redis_server import RedisServer

from .figures import record

PREFIX = "rel_"
LOGGER = rediscache.__name__
STRICT, LENIENT = "RedisCache", "RedisCacheNoExceptions"


def redis_stack(url: str, cache_type: str, **settings: Any) -> CacheStack:
    """A stack on ``url`` with the ``rel_`` prefix; ``settings`` adds or overrides keys."""
    stack = CacheStack()
    stack.configure(
        {"CACHE_TYPE": cache_type, "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": PREFIX, **settings}
    )
    return stack


@pytest.fixture
def raw(redis_url: str, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the session's server (emptied by ``redis_url``)."""
    with redis_server.client() as client:
        yield client


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines the Redis backends logged."""
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


# -- scenario 4: undeserializable entries ------------------------------------------------

# Each case: the serializer the application reads with.
UNREADABLE = {
    "random bytes": "pickle",
    "truncated pickle": "pickle",
    "renamed class": "pickle",
    "moved module": "pickle",
    "unknown pickle protocol": "pickle",
    "JSON under the pickle serializer": "pickle",
    "pickle under the JSON serializer": "json",
}
SHOP = "stratacache_reliability_shop_"  # the application's modules, by case
ROUNDS = 3  # "every time": the same bad entry, planted again and again


@pytest.fixture
def shop_modules() -> Iterator[None]:
    """Forget the application modules a test made (unpickling imports them)."""
    yield
    for name in [m for m in sys.modules if m.startswith(SHOP)]:
        del sys.modules[name]


def unreadable_payload(kind: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Bytes that the application's serializer cannot turn back into a value."""
    if kind == "random bytes":
        return random.Random(7).randbytes(64)
    if kind == "truncated pickle":
        return pickle.dumps({"prices": list(range(100))})[:-9]
    if kind == "unknown pickle protocol":
        return b"\x80\x09" + pickle.dumps(1.5, 5)[2:]
    if kind == "JSON under the pickle serializer":
        return json.dumps({"price": 1.5}).encode()
    if kind == "pickle under the JSON serializer":
        return pickle.dumps({"price": 1.5})
    # A value pickled by an older release of the application, whose code changed since.
    module = SHOP + kind.replace(" ", "_")
    home = directory / module
    home.mkdir()
    monkeypatch.syspath_prepend(str(home))
    source = home / f"{module}.py"
    source.write_text(
        "class Price:\n    def __init__(self, amount):\n        self.amount = amount\n"
    )
    data = pickle.dumps(importlib.import_module(module).Price(3))
    del sys.modules[module]
    if kind == "renamed class":
        source.write_text(source.read_text().replace("Price", "PriceRecord"))
    else:
        (home / "shop").mkdir()
        source.rename(home / "shop" / "models.py")
    importlib.invalidate_caches()
    return data


def make_price(stack: CacheStack, calls: Counter[str]) -> Callable[[int], dict[str, int]]:
    """A decorated function on ``stack``, counting its runs by shared backend."""

    @cached_for(minutes=5, stack=stack)
    def price(item: int) -> dict[str, int]:
        calls[stack.shared_cache.config.type] += 1
        return {"item": item, "amount": 3}

    return price


def strict_errors(stack: CacheStack, key: str, price: Callable[[int], Any]) -> set[str]:
    """Read ``key`` every way a RedisCache stack offers, then call ``price(7)``.

    Returns the names of the errors raised ("no error" for a read that raised none).
    """
    backend = stack.shared_cache.cache
    raised: set[str] = set()
    for read in (
        lambda: backend.lookup(key),
        lambda: backend.get(key),
        lambda: backend.get_many(key),
        lambda: stack.get(key),
        lambda: price(7),
    ):
        try:
            read()
        except DeserializationError as exc:
            raised.add(type(exc).__name__)
        else:
            raised.add("no error")
    return raised


@pytest.mark.usefixtures("shop_modules")
def test_undeserializable_entries(
    raw: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    table: list[dict[str, Any]] = []
    problems: list[str] = []
    raised_types: set[str] = set()
    for kind, serializer in UNREADABLE.items():
        payload = unreadable_payload(kind, tmp_path, monkeypatch)
        stacks = {
            name: redis_stack(redis_url, name, CACHE_SERIALIZER=serializer)
            for name in (STRICT, LENIENT)
        }
        calls = Counter[str]()

        # RedisCacheNoExceptions: a miss, the entry deleted and logged, every time.
        lenient = stacks[LENIENT]
        price = make_price(lenient, calls)
        key = "entry"
        deleted = 0
        caplog.clear()
        for _ in range(ROUNDS):
            raw.set(PREFIX + key, payload)
            if lenient.shared_cache.cache.lookup(key) is NO_VALUE and not raw.exists(PREFIX + key):
                deleted += 1
        try:
            lenient.shared_cache.cache.serializer.loads(payload)
            reason = "readable!"
        except DeserializationError as exc:
            reason = str(exc)
        logged = [w for w in redis_warnings(caplog) if PREFIX + key in w and reason in w]
        # ... and a decorated function recomputes the value, which replaces the bad entry.
        full = PREFIX + price.cache_key(7)
        raw.set(full, payload)
        recomputed = price(7) == {"item": 7, "amount": 3} and calls[LENIENT] == 1
        lenient.local_cache.cache.clear()
        reused = price(7) == {"item": 7, "amount": 3} and calls[LENIENT] == 1
        stored = lenient.shared_cache.cache.lookup(price.cache_key(7))
        if not (deleted == ROUNDS and len(logged) == ROUNDS and recomputed and reused):
            problems.append(f"{kind}: {deleted=} {logged=} {recomputed=} {reused=}")
        if stored != {"item": 7, "amount": 3}:
            problems.append(f"{kind}: the recomputed value was not stored ({stored!r})")

        # RedisCache: one documented error, DeserializationError, from every read.
        strict = stacks[STRICT]
        strict_price = make_price(strict, calls)
        raw.set(PREFIX + key, payload)
        raw.set(PREFIX + strict_price.cache_key(7), payload)
        raised = strict_errors(strict, key, strict_price)
        raised_types |= raised
        kept = raw.exists(PREFIX + key) == 1
        table.append(
            {
                "case": kind,
                LENIENT: f"miss, deleted and logged {deleted}/{ROUNDS}; recomputed and replaced",
                STRICT: ", ".join(sorted(raised)) + (" (entry kept)" if kept else ""),
            }
        )

    readable, unreadable = random_bytes_property(redis_url, raw)
    table.append(
        {
            "case": f"hypothesis: {readable + unreadable} random byte strings",
            LENIENT: f"{unreadable} unreadable: each a miss and deleted;"
            f" {readable} readable (digits or a valid pickle): the value",
            STRICT: f"DeserializationError for each of the {unreadable} unreadable",
        }
    )
    record(
        4,
        "Undeserializable entries",
        requirement=(
            "RedisCacheNoExceptions returns a miss and deletes the key every time; RedisCache"
            " raises one documented error (DeserializationError)"
        ),
        figures={
            "cases": len(UNREADABLE) + 1,
            "hypothesis examples": readable + unreadable,
            "errors raised by RedisCache": ", ".join(sorted(raised_types)),
            "failures": len(problems),
        },
        table=table,
    )
    assert problems == []
    assert raised_types == {"DeserializationError"}


def random_bytes_property(url: str, raw: redis.Redis) -> tuple[int, int]:
    """Plant random bytes (hypothesis) and read them with both backends.

    Bytes the serializer can read (digits, a valid pickle) are a value for both; any others
    are a miss and deleted for RedisCacheNoExceptions, and DeserializationError for RedisCache.
    Returns how many examples were readable and unreadable.
    """
    strict = redis_stack(url, STRICT).shared_cache.cache
    lenient = redis_stack(url, LENIENT).shared_cache.cache
    counts = Counter[bool]()

    values = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers()))

    @settings(max_examples=50, deadline=None, database=None)
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.binary(max_size=200).map(lambda tail: b"\x80\x05" + tail),  # a pickle header
            st.binary(max_size=200).map(lambda tail: b"\x80\x05\x95" + tail),  # and a frame
            values.map(pickle.dumps),
            st.tuples(values, st.integers(1, 8)).map(lambda v: pickle.dumps(v[0])[: -v[1]]),
        )
    )
    def check(payload: bytes) -> None:
        key = f"random{sum(counts.values())}"
        raw.set(PREFIX + key, payload)
        try:
            value = strict.lookup(key)
        except DeserializationError:
            readable = False
        else:
            readable = True
            assert raw.exists(PREFIX + key) == 1
        looked_up = lenient.lookup(key)
        if readable:
            assert looked_up is not NO_VALUE
            assert repr(looked_up) == repr(value)
            assert raw.exists(PREFIX + key) == 1
        else:
            assert looked_up is NO_VALUE
            assert raw.exists(PREFIX + key) == 0, "the unreadable entry is deleted"
        counts[readable] += 1
        raw.delete(PREFIX + key)

    check()
    return counts[True], counts[False]


# -- scenario 5: values that cannot be pickled --------------------------------------------

SHARED_BACKENDS = [
    "RedisCacheNoExceptions",
    "RedisCache",
    "RedisCacheAtomic at_most_once",
    "RedisCacheAtomic at_least_once",
    "FileSystemCache",
]


def unpicklable_values(directory: Path) -> dict[str, Callable[[], Any]]:
    """Makers of values pickle refuses, whole or part way through."""
    return {
        "a lambda": lambda: lambda x: x,
        "an open file": lambda: open(directory / "open.txt", "w"),
        "a list ending in a lambda": lambda: [1, "two", 3.0, lambda: 4],
    }


def decorated(
    stack: CacheStack, make: Callable[[], Any], mode: str
) -> tuple[Callable[[int], Any], list[Any]]:
    """A function on ``stack`` that returns a new value of ``make`` each call, and those values."""
    made: list[Any] = []
    atomic: Any = mode or None

    @cached_for(minutes=5, stack=stack, atomic_writes=atomic)
    def compute(n: int) -> Any:
        made.append(make())
        return made[-1]

    return compute, made


def test_unpicklable_values_are_returned_and_never_stored(
    raw: redis.Redis, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table: list[dict[str, Any]] = []
    problems: list[str] = []
    cache_dir = tmp_path / "cache"
    caplog.set_level(logging.WARNING)
    for shared in SHARED_BACKENDS:
        cache_type, _, mode = shared.partition(" ")
        if cache_type == "FileSystemCache":
            stack = CacheStack()
            stack.configure({"CACHE_TYPE": cache_type, "CACHE_DIR": str(cache_dir)})
        else:
            stack = redis_stack(redis_url, cache_type)
        layers = (stack.local_cache, stack.local_cache_no_serializer, stack.shared_cache)
        for what, make in unpicklable_values(tmp_path).items():
            compute, made = decorated(stack, make, mode)
            key = compute.cache_key(1)
            try:
                results = [compute(1), compute(1)]
                returned = [a is b for a, b in zip(results, made, strict=True)] == [True, True]
                try:
                    stack.set("direct", made[0])
                    direct = "stored"
                except SerializationError:
                    direct = "SerializationError"
                left = [
                    layer.name
                    for layer in layers
                    for k in (key, "direct")
                    if layer.cache.lookup(k) is not NO_VALUE
                ]
            finally:
                for value in made:
                    if hasattr(value, "close"):
                        value.close()
            if cache_type == "FileSystemCache":
                left += [f.name for f in cache_dir.iterdir()] if cache_dir.exists() else []
            else:
                left += [k.decode() for k in raw.scan_iter(count=1000)]  # entry, tracking, lock
            if not returned or len(made) != 2 or left or direct != "SerializationError":
                problems.append(f"{shared} {what}: {returned=} {len(made)=} {left=} {direct=}")
            table.append(
                {
                    "shared layer": shared,
                    "value": what,
                    "cached_for call": "returns its value" if returned else "WRONG",
                    "stored in any layer": ", ".join(left) or "nothing",
                    "direct set": direct,
                }
            )
    not_cached = [r for r in caplog.records if "result not cached" in r.getMessage()]
    record(
        5,
        "Values that cannot be pickled",
        requirement=(
            "the call returns its value, nothing partial is stored in any layer; a direct set"
            " raises SerializationError and stores nothing"
        ),
        figures={
            "cases": len(table),
            "calls that returned their value": sum(
                r["cached_for call"] == "returns its value" for r in table
            ),
            "entries left in any layer": sum(r["stored in any layer"] != "nothing" for r in table),
        },
        table=table,
    )
    assert problems == []
    assert len(not_cached) == len(table), "one warning per function"


# -- scenario 13: hostile keys ------------------------------------------------------------

HOSTILE_KEYS = [
    "../x",
    "../../../../tmp/escaped",
    "/etc/passwd",
    ".",
    "..",
    "",
    "a/b\\c",
    "a\x00b",
    "\x00",
    "line\nbreak\r\n",
    "tab\there ",
    "ünïcødé ✓ 日本",
    "\U0001f600",  # an emoji...
    "\ud83d\ude00",  # ...and its UTF-16 surrogates as two code points: another key
    "\ud800 lone surrogate",
    "caf\udce9",  # a file name's undecodable byte, as os.fsdecode gives it
    "*",
    "[a-z]?",
    "{tag}",
    "k" * 10240,
    "k" * 10239 + "1",
    "k" * 10239 + "2",
]


def arguments_past_the_cut() -> list[str]:
    """Arguments whose keys differ only where the key builder keeps just a digest.

    Past :data:`~stratacache.keys.MAX_KEY_LENGTH`, a key keeps the function's name, the first
    60 and the last 30 characters of its arguments, and a SHA-256 of the whole key.
    """
    base = "x" * 500
    middle = [base[:250] + c + base[251:] for c in "AB"]
    head_cut = [base[:61] + c + base[62:] for c in "AB"]  # just past the kept head
    tail = ["q" * 10239 + c for c in "12"]  # 10 KB, differing in the last character only
    return middle + head_cut + tail


def files_under(root: Path) -> set[Path]:
    """Every file below ``root``."""
    return {Path(d, f) for d, _dirs, files in os.walk(root) for f in files}


def check_stack_keys(stack: CacheStack, arguments: list[str]) -> tuple[int, list[str]]:
    """Cache ``echo(a)`` for each argument; return the distinct keys and what went wrong."""
    calls = Counter[str]()

    @cached_for(minutes=5, stack=stack)
    def echo(text: str) -> str:
        calls[text] += 1
        return text

    wrong = [a for a in arguments if echo(a) != a]
    stack.local_cache.cache.clear()  # the second round reads the shared layer
    wrong += [a for a in arguments if echo(a) != a or calls[a] != 1]
    return len({echo.cache_key(a) for a in arguments}), [repr(a[:80]) for a in wrong]


def test_hostile_keys_neither_escape_nor_collide(
    raw: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    keys = HOSTILE_KEYS
    assert len(set(keys)) == len(keys)
    arguments = [*keys, *arguments_past_the_cut()]
    assert len(set(arguments)) == len(arguments)
    table: list[dict[str, Any]] = []
    problems: list[str] = []

    # FileSystemCache: every file inside cache_dir, one file per key.
    for key_prefix in ("", "../../"):
        cache_dir = tmp_path / f"fs{len(table)}" / "cache"
        before = files_under(tmp_path)
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_TYPE": "FileSystemCache",
                "CACHE_DIR": str(cache_dir),
                "CACHE_THRESHOLD": 0,
                "CACHE_KEY_PREFIX": key_prefix,
            }
        )
        backend = stack.shared_cache.cache
        for i, key in enumerate(keys):
            backend.set_tracked(key, i, None, "grp/../" + key)
        entries = sorted(cache_dir.glob("*.entry"))
        round_trip = backend.get_many(*keys) == list(range(len(keys)))
        distinct, wrong = check_stack_keys(stack, arguments)
        escaped = [p for p in files_under(tmp_path) - before if p.parent != cache_dir]
        collisions = len(keys) - len(entries) + len(arguments) - distinct
        table.append(
            {
                "backend": f"FileSystemCache, key_prefix={key_prefix!r}",
                "keys": len(keys) + len(arguments),
                "escapes": len(escaped),
                "collisions": collisions,
                "exact round trip": round_trip and not wrong,
            }
        )
        problems += [f"escaped: {p}" for p in escaped] + wrong
        assert backend.clear_tracked("grp/../" + keys[7]) == 1

    # Redis: each key stored under exactly the prefix plus its bytes, none outside it.
    for cache_type in (STRICT, LENIENT):
        raw.flushdb()
        stack = redis_stack(redis_url, cache_type)
        backend = stack.shared_cache.cache
        for i, key in enumerate(keys):
            assert backend.set(key, i) is True
        names = set(raw.scan_iter(count=1000))
        expected = {(PREFIX + key).encode("utf-8", "surrogatepass") for key in keys}
        exact = names == expected and all(
            raw.get((PREFIX + key).encode("utf-8", "surrogatepass")) == str(i).encode()
            for i, key in enumerate(keys)
        )
        round_trip = backend.get_many(*keys) == list(range(len(keys)))
        distinct, wrong = check_stack_keys(stack, arguments)
        outside = [n for n in raw.scan_iter(count=1000) if not n.startswith(PREFIX.encode())]
        collisions = len(keys) - len(names) + len(arguments) - distinct
        for key in keys:
            backend.delete(key)
        left = [n for n in raw.scan_iter(count=1000) if n in expected]
        table.append(
            {
                "backend": f"{cache_type}, key_prefix={PREFIX!r}",
                "keys": len(keys) + len(arguments),
                "escapes": len(outside),
                "collisions": collisions,
                "exact round trip": exact and round_trip and not wrong and not left,
            }
        )
        problems += [f"outside the prefix: {n!r}" for n in outside] + wrong

    record(
        13,
        "Hostile keys for FileSystemCache and Redis",
        requirement="nothing written outside the cache directory, no two keys collide",
        figures={
            "keys per backend": len(keys) + len(arguments),
            "escapes": sum(r["escapes"] for r in table),
            "collisions": sum(r["collisions"] for r in table),
        },
        table=table,
    )
    assert problems == []
    assert [r for r in table if r["escapes"] or r["collisions"] or not r["exact round trip"]] == []
