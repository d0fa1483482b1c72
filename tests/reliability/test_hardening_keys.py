"""Hardening 11.6 and 11.17 of issue 11: no call is served another call's value.

* 11.6: numpy arrays were keyed by a ``repr`` that elides their middle (``total(b)`` returned
  another array's sum), ``__cache_key__`` text went into keys unescaped (user text could
  spell another call's arguments), two lambdas of one module shared their entries
  (``square(7)`` returned ``double(7)``'s 14), and Flask-Caching's ``__caching_id__`` was
  ignored, so two rows with equal reprs shared a method's entries.
* 11.17: keys that are not ``str`` worked in SimpleCache and failed in the others; an
  argument nested 10,000 deep raised ``RecursionError``, not the documented
  ``TypeError``; decorating a ``functools.partial`` raised an unclear ``AttributeError``.

Each pair of calls that collided runs through ``cached_for`` on a real stack: the second
call must get its own value. Then hypothesis searches for two distinct argument lists with
one key.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache import CacheStack, cached_for
from stratacache.keys import MAX_DEPTH
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.null import NullCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer
from tests.redis_server import RedisServer
from tests.test_keys import (
    NEAR_MISSES,
    Row,
    Shown,
    Tagged,
    argument_lists,
    assert_keys_match_identities,
    nested,
)

from .figures import record

ARRAYS = 20
EXAMPLES = 500


def power(base: int, exp: int) -> int:
    return base**exp


Case = tuple[str, Callable[[], Any], Callable[[], Any], Any]


def collision_cases() -> list[Case]:
    """Pairs of calls that shared a key before the fix: (case, first, second, second's value)."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})

    @cached_for(stack=stack)
    def total(values: Any) -> int:
        return int(values.sum())

    @cached_for(stack=stack)
    def count(items: list[Any]) -> int:
        return len(items)

    class Account(Row):
        @cached_for(stack=stack)
        def balance(self) -> int:
            return self.id * 100

    square = cached_for(stack=stack)(partial(power, exp=2))
    cube = cached_for(stack=stack)(partial(power, exp=3))

    cases: list[Case] = []
    for i in range(ARRAYS):  # arrays whose reprs are equal: only the elided middle differs
        a = np.arange(5000) + i
        b = a.copy()
        b[2500] = -1
        assert repr(a) == repr(b)
        cases.append((f"numpy array {i}", partial(total, a), partial(total, b), int(b.sum())))
    honest, forged = [Tagged("1"), Tagged("2")], [Tagged("1>, tests.test_keys.Tagged<2")]
    cases.append(("__cache_key__ text", partial(count, honest), partial(count, forged), 1))
    cases.append(("repr text", partial(count, [1, 2]), partial(count, [Shown("1, 2")]), 1))
    first, second = Account(1, "same"), Account(2, "same")
    cases.append(("__caching_id__", first.balance, second.balance, 200))
    cases.append(("functools.partial", partial(square, 7), partial(cube, 7), 343))
    return cases


def test_no_call_is_served_another_calls_value() -> None:
    wrong = []
    cases = collision_cases()
    for case, first, second, expected in cases:
        first()
        if second() != expected:
            wrong.append(case)
    lambdas_refused = 0
    for body in (lambda x: x * x, lambda x: 2 * x):
        with pytest.raises(TypeError, match="cannot cache a lambda"):
            cached_for(stack=CacheStack())(body)
        lambdas_refused += 1
    deep = 0
    for depth in (MAX_DEPTH + 1, 1000, 10_000):
        with pytest.raises(TypeError, match=f"more than {MAX_DEPTH} levels deep"):
            cached_for(stack=CacheStack())(power).cache_key(nested(depth), 1)
        deep += 1

    checked = {"examples": 0, "pairs": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(st.lists(argument_lists, min_size=2, max_size=8))
    def search(calls: list[tuple[Any, ...]]) -> None:
        checked["examples"] += 1
        checked["pairs"] += assert_keys_match_identities(calls + NEAR_MISSES)

    search()
    record(
        106,
        "Hardening 11.6: key collisions",
        requirement=(
            "no pair of distinct calls shares a key: each call that collided gets its own"
            " value, lambdas are refused, deep nesting is a TypeError"
        ),
        figures={
            "collision cases tried": len(cases),
            "wrong values served": len(wrong),
            "decorated lambdas refused": f"{lambdas_refused} of 2",
            "deep arguments refused with TypeError": f"{deep} of 3",
            "hypothesis examples run": checked["examples"],
            "argument-list pairs compared": checked["pairs"],
            "collisions found": 0,  # assert_keys_match_identities raises on the first
        },
    )
    assert wrong == []


# 11.17: keys that are not str. SimpleCache and NullCache took them (a dict takes any
# hashable), the Redis and file backends failed with "can only concatenate str": a program
# written against the default stack broke when Redis was configured.
NON_STR_KEYS: list[Any] = [1, (1, 2), b"k", None]


def key_outcome(operation: Callable[..., Any], *arguments: Any) -> str:
    """``refused`` (our TypeError), ``accepted``, or the other error it raised."""
    try:
        operation(*arguments)
    except TypeError as exc:
        return "refused" if "cache keys are str" in str(exc) else f"other: {exc}"
    return "accepted"


def test_non_string_keys_are_refused_alike_by_every_backend(
    make_redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    url = make_redis_server().url
    backends = [
        SimpleCache(),
        SimpleCacheNoSerializer(),
        NullCache(),
        FileSystemCache(str(tmp_path / "files")),
        RedisCache(url=url, key_prefix="keys"),
        RedisCacheNoExceptions(url=url, key_prefix="keys"),
        RedisCacheAtomic(url=url, key_prefix="keys"),
    ]
    stack = CacheStack.from_tiers([SimpleCache(), RedisCache(url=url, key_prefix="stack")])
    rows = []
    for name, write, read in [
        *((type(b).__name__, b.set, b.get) for b in backends),
        ("CacheStack", stack.set, stack.get),
    ]:
        outcomes = {}
        for key in NON_STR_KEYS:
            outcomes[f"write {key!r}"] = key_outcome(write, key, 1)
            outcomes[f"read {key!r}"] = key_outcome(read, key)
        refused = sum(outcome == "refused" for outcome in outcomes.values())
        rows.append({"backend": name, "refused": f"{refused}/{len(outcomes)}"})
    record(
        scenario=117,
        title="Hardening 11.17: keys that are not str (1, (1, 2), b'k', None)",
        requirement="every backend and the stack refuse them alike, with one TypeError message"
        " (SimpleCache and NullCache took them, the others failed with an unclear TypeError)",
        figures={"backends": len(rows)},
        table=rows,
        name="non-str-keys",
    )
    assert all(
        row["refused"] == f"{2 * len(NON_STR_KEYS)}/{2 * len(NON_STR_KEYS)}" for row in rows
    ), rows
